// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptModelError, ModelNotFoundError } from '../../src/model/errors.js';
import { fingerprintCachePath, modelFingerprint, openModel } from '../../src/model/load.js';
import { tempDir, writeTinyHf } from '../support/files.js';
import { STORIES_BIN, STORIES_GGUF, STORIES_TOKENIZER } from '../support/models.js';

const dir = tempDir();
const cacheRoot = nodePath.join(dir, 'cache');
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const sha256 = (path: string) => createHash('sha256').update(fs.readFileSync(path)).digest('hex');

describe('openModel', () => {
  it('picks the format from the path', async () => {
    const gguf = await openModel(STORIES_GGUF);
    expect(gguf.format).toBe('gguf');
    expect(gguf.files).toEqual([STORIES_GGUF]);
    gguf.close();

    const bin = await openModel(STORIES_BIN);
    expect(bin.format).toBe('llama2c');
    expect(bin.tokenizer?.kind).toBe('llama2c');
    bin.close();

    const hf = nodePath.join(dir, 'hf');
    writeTinyHf(hf, { tokenizer: true });
    const h = await openModel(hf);
    expect(h.format).toBe('safetensors');
    h.close();
  });

  it('recognises GGUF by its magic whatever the name, and takes a tokenizer path for llama2.c', async () => {
    const renamed = nodePath.join(dir, 'model.bin');
    fs.copyFileSync(STORIES_GGUF, renamed);
    const s = await openModel(renamed);
    expect(s.format).toBe('gguf');
    s.close();
    const ckpt = nodePath.join(dir, 'ckpt', 'weights.bin');
    fs.mkdirSync(nodePath.dirname(ckpt));
    fs.copyFileSync(STORIES_BIN, ckpt);
    const l = await openModel(ckpt, { tokenizerPath: STORIES_TOKENIZER });
    expect(l.tokenizer?.kind === 'llama2c' && l.tokenizer.tokens.length).toBe(512);
    l.close();
  });

  it('reports missing paths and unknown files clearly', async () => {
    await expect(openModel(nodePath.join(dir, 'nope.gguf'))).rejects.toThrow(ModelNotFoundError);
    await expect(openModel('./relative/missing')).rejects.toThrow(ModelNotFoundError);
    await expect(openModel('not-a-repo-or-path')).rejects.toThrow(ModelNotFoundError);
    const odd = nodePath.join(dir, 'notes.txt');
    fs.writeFileSync(odd, 'hello');
    await expect(openModel(odd)).rejects.toThrow(CorruptModelError);
    const fake = nodePath.join(dir, 'fake.gguf');
    fs.writeFileSync(fake, 'definitely not gguf');
    await expect(openModel(fake)).rejects.toThrow(/bad magic/);
  });
});

describe('modelFingerprint', () => {
  it('is the sha256 of the weights file, and is cached by path, size and mtime', async () => {
    const copy = nodePath.join(dir, 'fp.gguf');
    fs.copyFileSync(STORIES_GGUF, copy);
    const expected = sha256(copy);
    expect(await modelFingerprint(copy, { cacheRoot })).toBe(expected);
    const cacheFile = fingerprintCachePath(cacheRoot);
    expect(cacheFile.startsWith(nodePath.join(dir, 'cache'))).toBe(true);
    const cache = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as Record<string, string>;
    const key = Object.keys(cache).find((k) => k.startsWith(copy + '|'))!;
    expect(cache[key]).toBe(expected);

    // The cache is used: a planted value comes back while the file is unchanged...
    cache[key] = 'planted';
    fs.writeFileSync(cacheFile, JSON.stringify(cache));
    expect(await modelFingerprint(copy, { cacheRoot })).toBe('planted');
    // ...and is ignored once the file changes.
    const bytes = fs.readFileSync(copy);
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(copy, bytes);
    const future = new Date(Date.now() + 5000);
    fs.utimesSync(copy, future, future);
    expect(await modelFingerprint(copy, { cacheRoot })).toBe(sha256(copy));
  });

  it('fingerprints a source (only its weights) and a sharded directory', async () => {
    const bin = await openModel(STORIES_BIN);
    expect(await modelFingerprint(bin, { cacheRoot })).toBe(sha256(STORIES_BIN));
    bin.close();
    const d = nodePath.join(dir, 'sharded');
    writeTinyHf(d, { shards: 2 });
    const files = fs.readdirSync(d).filter((f) => f.endsWith('.safetensors')).sort();
    const all = createHash('sha256');
    for (const f of files) all.update(fs.readFileSync(nodePath.join(d, f)));
    const expected = all.digest('hex');
    expect(await modelFingerprint(d, { cacheRoot })).toBe(expected);
    const source = await openModel(d);
    expect(await modelFingerprint(source, { cacheRoot })).toBe(expected);
    source.close();
  });
});
