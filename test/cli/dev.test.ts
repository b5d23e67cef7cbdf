/** `corolla dev make-model` (src/cli/dev.ts): the command writes a model and refuses bad options. */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run as runDev } from '../../src/cli/dev.js';
import { MakeModelError } from '../../src/model/errors.js';
import { openGguf } from '../../src/model/gguf.js';
import { tempDir } from '../support/files.js';

const dir = tempDir('corolla-make-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('corolla dev make-model', () => {
  it('the CLI writes a model', async () => {
    const out = nodePath.join(dir, 'cli.gguf');
    const writes: string[] = [];
    const original = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (writes.push(String(chunk)), true)) as typeof process.stdout.write;
    try {
      await runDev(['make-model', '--shape', 'stories-tiny', '--dtype', 'f16', '--out', out, '--seed', '3']);
    } finally {
      process.stdout.write = original;
    }
    expect(writes.join('')).toMatch(/wrote .*cli\.gguf/);
    const g = openGguf(out);
    expect(g.metadata.get('general.file_type')).toBe(1);
    expect(g.metadata.get('corolla.random.seed')).toBe(3);
    g.close();
    await expect(runDev(['make-model', '--shape', 'nope', '--out', out])).rejects.toThrow(MakeModelError);
    await expect(runDev(['make-model', '--shape', 'stories-tiny', '--out', out, '--seed', '-1'])).rejects.toThrow(/seed/);
  });
});
