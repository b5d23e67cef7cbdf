// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
/**
 * Parity with llama.cpp on random-weight SmolLM2-135M-shaped GGUFs (30 layers, 9 heads, 3 KV heads, 49152 vocab).
 *
 * Bounds:
 * - f32: identical greedy tokens for 32 steps and max |logit diff| < 1e-3. Both engines compute in f32 with an
 *   f32 KV cache; what remains is summation order.
 * - q8_0 and q4_0: our weights are exact (quant-exactness.test.ts shows our quantized kernels at f32 activations
 *   match the dequantized f32 weights to 1e-4). Both engines then quantize activations to 8 bits before the
 *   integer dot products, with different blocking and rounding, and a random 30-layer network amplifies such
 *   perturbations: our own int8 activations alone move logits by ~7% of their range from the exact result, and
 *   llama.cpp's by a similar amount in another direction. So we compare teacher-forced (our engine is fed
 *   llama.cpp's greedy tokens) and require, at every one of 32 steps, a max |logit diff| under 30% of the logits'
 *   range (measured: 18% at q8_0, 24% at q4_0), and the same greedy token at the first step.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadLocalModel, type LocalModel } from '../../src/inference/local-model.js';
import { openModel } from '../../src/model/load.js';
import { llamaCppGreedy } from '../support/llama-cpp.js';
import { testModel } from '../support/models.js';

const argmax = (a: Float32Array) => a.reduce((best, v, i) => (v > a[best]! ? i : best), 0);
const PROMPT = [1, 504, 3258, 282, 253, 1345, 28, 665];
const STEPS = 32;

/** Our logits along a token path: greedy, or forced to `forced` (teacher forcing). */
async function ours(path: string, forced?: readonly number[]) {
  const source = await openModel(path);
  const model: LocalModel = await loadLocalModel(source);
  const session = await model.openSession(PROMPT.length + STEPS + 1);
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  let row = await session.next(PROMPT);
  for (let i = 0; i < STEPS; i++) {
    const t = forced ? forced[i]! : argmax(row);
    tokens.push(argmax(row));
    logits.push(row);
    row = await session.next([t]);
  }
  await model.close();
  source.close();
  return { tokens, logits };
}

describe('parity with llama.cpp (node-llama-cpp, 1 thread)', () => {
  afterAll(async () => {
    const { sharedLlama } = await import('../support/llama-cpp.js');
    await (await sharedLlama()).dispose();
  });

  it('f32: the same 32 greedy tokens and max |logit diff| < 1e-3', async () => {
    const path = testModel('smollm2-135m', 'f32');
    const reference = await llamaCppGreedy(path, PROMPT, STEPS, { threads: 1 });
    const mine = await ours(path);
    expect(mine.tokens).toEqual(reference.tokens);
    const worst = Math.max(...mine.logits.map((a, i) => maxDiff(a, reference.logits[i]!)));
    console.log(`f32: max |logit diff| over ${STEPS} steps: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-3);
  }, 300_000);

  it.each(['q8_0', 'q4_0'] as const)('%s: teacher-forced logits within 30%% of their range', async (dtype) => {
    const path = testModel('smollm2-135m', dtype);
    const reference = await llamaCppGreedy(path, PROMPT, STEPS, { threads: 1 });
    const mine = await ours(path, reference.tokens);
    expect(mine.tokens[0]).toBe(reference.tokens[0]);
    let worstRelative = 0;
    let agree = 0;
    mine.logits.forEach((a, i) => {
      const b = reference.logits[i]!;
      const range = Math.max(...b) - Math.min(...b);
      worstRelative = Math.max(worstRelative, maxDiff(a, b) / range);
      if (mine.tokens[i] === reference.tokens[i]) agree++;
    });
    console.log(`${dtype}: teacher-forced, ${agree}/${STEPS} argmax agree, worst max |diff| ${(worstRelative * 100).toFixed(2)}% of range`);
    expect(worstRelative).toBeLessThan(0.3);
  }, 300_000);
});

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let j = 0; j < a.length; j++) d = Math.max(d, Math.abs(a[j]! - b[j]!));
  return d;
}
