// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelNotFoundError } from '../../src/model/errors.js';
import { hubOptionsFromEnv } from '../../src/cli/env.js';
import { HubDownloadError } from '../../src/model/errors.js';
import { downloadFromHub, hubCacheDir, isHubSpec, parseHubSpec } from '../../src/model/hub.js';
import { openModel } from '../../src/model/load.js';
import { tempDir, writeTinyGguf, writeTinyHf } from '../support/files.js';

const root = tempDir('corolla-hub-');
const served = nodePath.join(root, 'served');
const requests: Array<{ url: string; auth?: string }> = [];
let server: http.Server;
let endpoint: string;

/** Repos the fake Hub serves: `${repo}@${revision}` → directory. */
const repos = new Map<string, string>();

beforeAll(async () => {
  const tiny = nodePath.join(served, 'tiny');
  writeTinyHf(tiny, { tokenizer: true, tied: true });
  repos.set('acme/tiny@main', tiny);
  const sharded = nodePath.join(served, 'sharded');
  writeTinyHf(sharded, { shards: 2 });
  repos.set('acme/sharded@v1.0', sharded);
  const gguf = nodePath.join(served, 'gguf');
  fs.mkdirSync(gguf, { recursive: true });
  writeTinyGguf(nodePath.join(gguf, 'tiny-q8.gguf'), { tokenizer: 'gpt2' });
  repos.set('acme/tiny-GGUF@main', gguf);

  server = http.createServer((req, res) => {
    requests.push({ url: req.url!, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
    const url = new URL(req.url!, 'http://hub');
    const match = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const dir = match ? repos.get(`${match[1]}@${decodeURIComponent(match[2]!)}`) : undefined;
    if (match?.[1] === 'acme/broken') {
      // Promise more than is sent, then drop the connection.
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(100));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    if (match?.[1] === 'acme/private') {
      res.writeHead(req.headers.authorization === 'Bearer sekrit' ? 404 : 401).end();
      return;
    }
    if (match?.[1] === 'acme/gated') {
      res.writeHead(403).end('gated');
      return;
    }
    const file = dir ? nodePath.join(dir, decodeURIComponent(match![3]!)) : undefined;
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Entry not found');
      return;
    }
    // The real Hub redirects resolve URLs to a CDN; do the same for GGUF files.
    if (file.endsWith('.gguf') && !url.searchParams.has('cdn')) {
      res.writeHead(302, { location: `${url.pathname}?cdn=1` }).end();
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, { 'content-length': String(body.length) }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(root, { recursive: true, force: true });
});

const cache = (name: string) => nodePath.join(root, 'cache-' + name);

describe('hub specs', () => {
  it('parses repo, revision and file', () => {
    expect(parseHubSpec('HuggingFaceTB/SmolLM2-135M-Instruct')).toEqual({ repo: 'HuggingFaceTB/SmolLM2-135M-Instruct', revision: 'main' });
    expect(parseHubSpec('hf:a/b@v2')).toEqual({ repo: 'a/b', revision: 'v2' });
    expect(parseHubSpec('a/b:dir/model-Q4_0.gguf')).toEqual({ repo: 'a/b', revision: 'main', file: 'dir/model-Q4_0.gguf' });
    expect(parseHubSpec('a/b@refs/pr/1:m.gguf')).toEqual({ repo: 'a/b', revision: 'refs/pr/1', file: 'm.gguf' });
    for (const bad of ['a', 'a/b/c', '../x/y', 'a/..', 'a/b:', 'a/b@', 'a/b:../../etc/passwd', '/abs/path']) {
      expect(isHubSpec(bad), bad).toBe(false);
      expect(() => parseHubSpec(bad)).toThrow(ModelNotFoundError);
    }
  });

  it('caches under {root}/hub/{owner}/{name}/{revision}', () => {
    expect(hubCacheDir(parseHubSpec('a/b@refs/pr/1'), '/c')).toBe('/c/hub/a/b/refs%2Fpr%2F1');
  });
});

describe('hub downloads (local server)', () => {
  it('downloads a safetensors repo, then serves it from the cache with no request', async () => {
    const before = requests.length;
    const events: string[] = [];
    const dir = await downloadFromHub('acme/tiny', { endpoint, cacheRoot: cache('a'), onProgress: (e) => events.push(e.file) });
    expect(dir).toBe(nodePath.join(cache('a'), 'hub', 'acme', 'tiny', 'main'));
    const fetched = requests.slice(before).map((r) => r.url);
    expect(fetched).toContain('/acme/tiny/resolve/main/config.json');
    expect(fetched).toContain('/acme/tiny/resolve/main/model.safetensors');
    expect(fetched).toContain('/acme/tiny/resolve/main/chat_template.jinja'); // asked for, absent (404)
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'model.safetensors']) {
      expect(fs.readFileSync(nodePath.join(dir, f)).equals(fs.readFileSync(nodePath.join(served, 'tiny', f))), f).toBe(true);
    }
    expect(fs.readdirSync(dir).some((f) => f.endsWith('.partial'))).toBe(false);
    expect(events).toContain('model.safetensors');

    const count = requests.length;
    const again = await downloadFromHub('acme/tiny', { endpoint, cacheRoot: cache('a') });
    expect(again).toBe(dir);
    expect(requests.length).toBe(count);
  });

  it('opens a hub model through openModel with HF_ENDPOINT, and sends HF_TOKEN', async () => {
    const saved = { endpoint: process.env.HF_ENDPOINT, token: process.env.HF_TOKEN, cache: process.env.COROLLA_CACHE };
    process.env.HF_ENDPOINT = endpoint;
    process.env.HF_TOKEN = 'hf_test_token';
    process.env.COROLLA_CACHE = cache('b');
    try {
      const before = requests.length;
      const source = await openModel('acme/tiny', { onProgress: () => {}, hub: hubOptionsFromEnv(process.env) });
      expect(source.format).toBe('safetensors');
      expect(source.config.tieWordEmbeddings).toBe(true);
      expect(source.tokenizer?.kind).toBe('hf');
      expect(source.readTensor('blk.0.attn_q').shape).toEqual([32, 32]);
      source.close();
      expect(requests.slice(before).every((r) => r.auth === 'Bearer hf_test_token')).toBe(true);
    } finally {
      for (const [k, v] of [['HF_ENDPOINT', saved.endpoint], ['HF_TOKEN', saved.token], ['COROLLA_CACHE', saved.cache]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('downloads sharded checkpoints at a revision', async () => {
    const dir = await downloadFromHub('acme/sharded@v1.0', { endpoint, cacheRoot: cache('c') });
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort()).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
    const source = await openModel(dir);
    expect(source.files).toHaveLength(2);
    source.close();
  });

  it('downloads a single GGUF file (following a redirect)', async () => {
    const path = await downloadFromHub('hf:acme/tiny-GGUF:tiny-q8.gguf', { endpoint, cacheRoot: cache('d') });
    expect(path.endsWith(nodePath.join('acme', 'tiny-GGUF', 'main', 'tiny-q8.gguf'))).toBe(true);
    expect(fs.readFileSync(path).equals(fs.readFileSync(nodePath.join(served, 'gguf', 'tiny-q8.gguf')))).toBe(true);
    const count = requests.length;
    expect(await downloadFromHub('acme/tiny-GGUF:tiny-q8.gguf', { endpoint, cacheRoot: cache('d') })).toBe(path);
    expect(requests.length).toBe(count);
  });

  it('404s are ModelNotFoundError', async () => {
    await expect(downloadFromHub('acme/nope', { endpoint, cacheRoot: cache('e') })).rejects.toThrow(ModelNotFoundError);
    await expect(downloadFromHub('acme/tiny-GGUF:missing.gguf', { endpoint, cacheRoot: cache('e') })).rejects.toThrow(ModelNotFoundError);
    await expect(downloadFromHub('acme/tiny@no-such-branch', { endpoint, cacheRoot: cache('e') })).rejects.toThrow(ModelNotFoundError);
    // A repo with config.json but no weights at all.
    repos.set('acme/noweights@main', nodePath.join(served, 'gguf'));
    fs.writeFileSync(nodePath.join(served, 'gguf', 'config.json'), '{}');
    await expect(downloadFromHub('acme/noweights', { endpoint, cacheRoot: cache('e') })).rejects.toThrow(/safetensors weights/);
  });

  it('401 is not found (with a token hint), 403 is a download error', async () => {
    const error = await downloadFromHub('acme/private', { endpoint, cacheRoot: cache('f'), token: '' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelNotFoundError);
    expect((error as Error).message).toMatch(/HF_TOKEN/);
    await expect(downloadFromHub('acme/gated', { endpoint, cacheRoot: cache('f') })).rejects.toThrow(HubDownloadError);
  });

  it('network failures and cut downloads are HubDownloadError with a cause, leaving no partial file', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await downloadFromHub('acme/tiny', { endpoint: `http://127.0.0.1:${port}`, cacheRoot: cache('g'), retries: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubDownloadError);
    expect((error as Error).cause).toBeDefined();

    const cut = await downloadFromHub('acme/broken:x.gguf', { endpoint, cacheRoot: cache('h') }).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(HubDownloadError);
    const dir = nodePath.join(cache('h'), 'hub', 'acme', 'broken', 'main');
    expect(fs.existsSync(nodePath.join(dir, 'x.gguf'))).toBe(false);
    expect(fs.existsSync(dir) ? fs.readdirSync(dir) : []).toEqual([]);
  });
});
