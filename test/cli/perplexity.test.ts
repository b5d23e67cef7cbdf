/**
 * `corolla perplexity` as a process, on the embedded stories260K and a Q4_0 re-quantization of it: the JSON line
 * matches the library's result, a model scored against itself has zero KL and full agreement, and the
 * re-quantized model's KL from F32 is positive and its perplexity worse.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalModel } from '../../src/inference/local-model.js';
import { perplexity, perplexityWindows } from '../../src/inference/perplexity.js';
import { requantizeGguf } from '../../src/model/quant-mix.js';
import { runCorolla } from '../support/cli.js';
import { STORIES_GGUF } from '../support/models.js';
import { STORY_TEXT } from '../support/story-text.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corolla-ppl-'));
const textFile = path.join(dir, 'story.txt');
fs.writeFileSync(textFile, STORY_TEXT);
const q4 = path.join(dir, 'stories-q4_0.gguf');
requantizeGguf(STORIES_GGUF, 'q4_0', q4);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as { tokens: number; ppl: number; kl_mean?: number; top1_agree?: number };

describe('corolla perplexity', () => {
  it('prints the library result as its last JSON line', async () => {
    const r = await runCorolla(['perplexity', '--model', STORIES_GGUF, '--file', textFile, '--json']);
    expect(r.code).toBe(0);
    const line = lastJson(r.stdout);
    const model = await LocalModel.open(STORIES_GGUF);
    const expected = await perplexity(model, STORY_TEXT);
    await model.close();
    expect(line.tokens).toBe(expected.tokens);
    expect(line.ppl).toBeCloseTo(expected.ppl, 6);
    expect(line.ppl).toBeGreaterThan(1);
    expect(line.ppl).toBeLessThan(20); // a trained model on text of its domain
    expect(line.kl_mean).toBeUndefined();
  }, 120_000);

  it('--kl-base: zero against itself, positive for a Q4_0 re-quantization, with --ctx windows', async () => {
    const self = lastJson((await runCorolla(['perplexity', '--model', STORIES_GGUF, '--file', textFile, '--ctx', '128', '--kl-base', STORIES_GGUF, '--json'])).stdout);
    expect(self.kl_mean).toBeCloseTo(0, 9);
    expect(self.top1_agree).toBe(1);
    const quantized = await runCorolla(['perplexity', '--model', q4, '--file', textFile, '--ctx', '128', '--kl-base', STORIES_GGUF, '--json']);
    expect(quantized.code).toBe(0);
    const q = lastJson(quantized.stdout);
    expect(q.tokens).toBe(self.tokens);
    expect(q.kl_mean).toBeGreaterThan(1e-3);
    expect(q.top1_agree).toBeGreaterThan(0.5);
    expect(q.top1_agree).toBeLessThan(1);
    expect(q.ppl).toBeGreaterThan(self.ppl);
  }, 120_000);

  it('fails with a message when the text is shorter than one window', async () => {
    const r = await runCorolla(['perplexity', '--model', STORIES_GGUF, '--file', textFile, '--ctx', '4096']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/fewer than one window of 4096/);
  }, 60_000);
});

describe('perplexityWindows (llama.cpp chunking)', () => {
  it('cuts whole windows, puts BOS first in each and scores their second half', () => {
    const ids = Array.from({ length: 21 }, (_, i) => 100 + i);
    const windows = perplexityWindows(ids, 1, 8);
    expect(windows.map((w) => w.ids)).toEqual([
      [1, 101, 102, 103, 104, 105, 106, 107],
      [1, 109, 110, 111, 112, 113, 114, 115],
    ]);
    expect(windows.every((w) => w.firstScored === 4)).toBe(true);
    expect(perplexityWindows(ids, 1)).toEqual([{ ids, firstScored: 0 }]);
  });
});
