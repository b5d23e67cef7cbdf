/**
 * Hugging Face checkpoints through the engine: sharded safetensors with an index, F32, F16 and BF16, each written
 * from the same random weights as a GGUF twin that holds exactly the same values (test/support/hf-twin.ts). The
 * checkpoint keeps Hugging Face's q/k row order (RoPE on head halves), its Llama 3 scaling in config.json rather
 * than a rope_freqs tensor, and Qwen2's biases under their own names; the logits must still be the twin's.
 *
 * Bound: the same greedy tokens and max |logit diff| < 1e-4. The two differ only in the order of the head
 * dimensions inside q·k, i.e. in summation order (measured ≤ 1e-5).
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEmbeddings } from '../../src/engine/embeddings.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import { openModel } from '../../src/model/load.js';
import type { ModelShapeName } from '../../src/model/make-model.js';
import { tempDir } from '../support/files.js';
import { writeHfTwin, type HfDtype } from '../support/hf-twin.js';
import { testModel } from '../support/models.js';
import { argmax, engineAlong, engineGreedy, maxDiff, randomTokens, worstDiff } from '../support/parity.js';

const BOUND = 1e-4;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function twin(shape: ModelShapeName, dtype: HfDtype, shards: number) {
  const dir = tempDir('corolla-hf-twin-');
  dirs.push(dir);
  return writeHfTwin(testModel(shape, 'f32'), shape, dir, dtype, shards);
}

/** Greedy along the GGUF twin, then the checkpoint teacher-forced along the same tokens. */
async function compare(shape: ModelShapeName, dtype: HfDtype, shards: number, prompt: number[], steps: number) {
  const t = twin(shape, dtype, shards);
  const gguf = await openModel(t.gguf);
  const hf = await openModel(t.hf);
  try {
    expect(hf.format).toBe('safetensors');
    expect(hf.files).toHaveLength(shards);
    expect(hf.readTensor('blk.0.attn_q').type).toBe(dtype.toLowerCase());
    const path = await engineGreedy(gguf, prompt, steps);
    const a = await engineAlong(gguf, prompt, path);
    const b = await engineAlong(hf, prompt, path);
    const worst = worstDiff(b.logits, a.logits);
    console.log(`${shape} ${dtype} in ${shards} file(s): max |logit diff| ${worst.toExponential(2)}`);
    return { a, b, worst, hf, gguf };
  } catch (error) {
    hf.close();
    gguf.close();
    throw error;
  }
}

describe('Hugging Face checkpoints match their GGUF twins', () => {
  const prompt = [1, ...randomTokens(15, 512, 5)];

  it.each([
    ['llama-2-tiny', 'F16', 4],
    ['llama-3.2-tiny', 'BF16', 3],
    ['qwen2.5-tiny', 'F16', 2],
    ['llama-3.2-tiny', 'F32', 1],
  ] as const)('%s, %s, %i file(s)', async (shape, dtype, shards) => {
    const { a, b, worst, hf, gguf } = await compare(shape, dtype, shards, prompt, 12);
    expect(b.tokens).toEqual(a.tokens);
    expect(worst).toBeLessThan(BOUND);
    if (shape === 'llama-3.2-tiny') {
      expect(hf.config.ropeScaling?.factor).toBe(32);
      expect(hf.tensorNames()).not.toContain('rope_freqs');
    }
    hf.close();
    gguf.close();
  }, 120_000);

  it('Mistral: the checkpoint gets the sliding window; within it, the twin\'s logits', async () => {
    // Positions 16..27, inside the window of 32: attention is the same whether windowed or not.
    const { a, b, worst, hf, gguf } = await compare('mistral-tiny', 'F32', 2, prompt, 12);
    expect(hf.config.slidingWindow).toBe(32);
    expect(gguf.config.slidingWindow).toBeUndefined();
    expect(b.tokens).toEqual(a.tokens);
    expect(worst).toBeLessThan(BOUND);
    hf.close();
    gguf.close();
  }, 120_000);

  it('Mistral: windowed prefill (masked, in chunks across the cache growth) equals windowed decode (fed window)', async () => {
    const t = twin('mistral-tiny', 'F32', 1);
    const hf = await openModel(t.hf);
    const gguf = await openModel(t.gguf);
    try {
      const long = [1, ...randomTokens(299, 512, 6)];
      // One prefill of 300 tokens: chunks of 256, the second starting past the window.
      const prefilled = await engineAlong(hf, long, [0]);
      // The same tokens one at a time: every step feeds only the window's rows.
      const decoded = await engineAlong(hf, long.slice(0, 1), [...long.slice(1), 0]);
      const last = decoded.logits[decoded.logits.length - 1]!;
      const gap = maxDiff(prefilled.logits[0]!, last);
      console.log(`mistral-tiny windowed, 300 positions: prefill vs decode ${gap.toExponential(2)}`);
      expect(gap).toBeLessThan(BOUND);
      // Past the window the checkpoint and the unwindowed twin part ways.
      const full = await engineAlong(gguf, long, [0]);
      expect(maxDiff(full.logits[0]!, last)).toBeGreaterThan(100 * BOUND);
      expect(argmax(last)).toBe(argmax(prefilled.logits[0]!));
    } finally {
      hf.close();
      gguf.close();
    }
  }, 120_000);

  it('Mistral: batched decode past the window equals single decode', async () => {
    const hf = await openModel(twin('mistral-tiny', 'F32', 1).hf);
    const span = await loadSpan(hf, { start: 0, end: hf.config.numLayers }, { maxBatch: 2 });
    const embed = loadEmbeddings(hf);
    try {
      // Two sessions past the window at different positions, so each slot is fed a different range of rows.
      const prompts = [[1, ...randomTokens(39, 512, 7)], [1, ...randomTokens(52, 512, 8)]];
      const next = [randomTokens(6, 512, 9), randomTokens(6, 512, 10)];
      const single: Float32Array[][] = [];
      for (const [i, prompt] of prompts.entries()) {
        span.openSession(`one${i}`, 64);
        await span.step({ sessionId: `one${i}`, hidden: embed.embed(prompt) });
        const outs: Float32Array[] = [];
        for (const t of next[i]!) outs.push(await span.step({ sessionId: `one${i}`, hidden: embed.embed([t]) }));
        single.push(outs);
      }
      prompts.forEach((prompt, i) => span.openSession(`two${i}`, 64));
      await Promise.all(prompts.map((prompt, i) => span.step({ sessionId: `two${i}`, hidden: embed.embed(prompt) })));
      for (let step = 0; step < 6; step++) {
        const outs = await span.stepBatch(prompts.map((_, i) => ({ sessionId: `two${i}`, hidden: embed.embed([next[i]![step]!]) })));
        outs.forEach((o, i) => expect(maxDiff(o, single[i]![step]!)).toBeLessThan(1e-5));
      }
    } finally {
      await span.dispose();
      hf.close();
    }
  }, 120_000);
});
