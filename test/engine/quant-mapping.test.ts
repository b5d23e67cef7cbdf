/**
 * Every GGUF type maps onto MatMulNBits operands that describe exactly the weights ggml decodes (up to f32 rounding
 * of the block offsets), but q6_K, requantized to 8-bit blocks of 32 within half a step; fused weights of different
 * forms stack without requantization.
 */
import { describe, expect, it } from 'vitest';
import { concatLinear, linearToF32, toLinearWeight } from '../../src/engine/weights.js';
import { dequantize, encodeTensor } from '../../src/model/quant.js';
import type { TensorType, WeightTensor } from '../../src/model/types.js';
import { randomFloats } from '../support/random.js';

const weight = (type: TensorType, n: number, k: number, seed: number): WeightTensor => {
  const x = randomFloats(n * k, seed, 0.05);
  for (let i = 0; i < x.length; i += 29) x[i]! += 0.04; // skewed blocks, so the mins matter
  return { name: 'w', type, shape: [n, k], data: encodeTensor(type, x) };
};

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('GGUF blocks as MatMulNBits operands', () => {
  it.each([
    ['q8_0', 8, 32, false],
    ['q4_0', 4, 32, false],
    ['q4_1', 4, 32, true],
    ['q5_0', 8, 32, false],
    ['q5_1', 8, 32, true],
    ['q4_k', 4, 32, true],
    ['q5_k', 8, 32, true],
  ] as const)('%s → %i bits, blocks of %i, offsets: %s, exact', (type, bits, blockSize, offsets) => {
    const t = weight(type, 6, 512, 3);
    const w = toLinearWeight(t);
    expect(w.kind).toBe('nbits');
    if (w.kind !== 'nbits') return;
    expect([w.bits, w.blockSize, Boolean(w.offsets)]).toEqual([bits, blockSize, offsets]);
    expect(maxDiff(linearToF32(w), dequantize(t))).toBeLessThan(1e-7);
  });

  it('q6_K → 8 bits, blocks of 32, each weight within half a step of what ggml decodes', () => {
    const t = weight('q6_k', 6, 512, 3);
    const w = toLinearWeight(t);
    if (w.kind !== 'nbits') throw new Error(`expected nbits, got ${w.kind}`);
    expect([w.bits, w.blockSize, Boolean(w.offsets)]).toEqual([8, 32, false]);
    const got = linearToF32(w);
    const want = dequantize(t);
    let worstSteps = 0;
    for (let i = 0; i < want.length; i++) worstSteps = Math.max(worstSteps, Math.abs(got[i]! - want[i]!) / w.scales[Math.floor(i / 32)]!);
    expect(worstSteps).toBeLessThanOrEqual(0.5 + 1e-4);
    expect(maxDiff(got, want)).toBeGreaterThan(0); // random scales: not exact here
  });

  it('q6_K blocks whose two scales share a divisor that fits 8 bits map exactly', () => {
    // One super-block: every 6-bit level random, scales 6 and −4 alternating (divisor 2: |t| ≤ 32·3 ≤ 127), d = 0.5.
    const block = new Uint8Array(210);
    for (let i = 0; i < 192; i++) block[i] = (i * 97 + 13) & 255;
    for (let j = 0; j < 16; j++) block[192 + j] = j % 2 ? 256 - 4 : 6;
    block.set([0x00, 0x38], 208); // f16 0.5
    const t: WeightTensor = { name: 'w', type: 'q6_k', shape: [1, 256], data: block };
    expect(maxDiff(linearToF32(toLinearWeight(t)), dequantize(t))).toBe(0);
  });

  it('stacks q4_K beside q6_K as they are, and merges parts of one form', () => {
    const q = weight('q4_k', 4, 256, 1);
    const v = weight('q6_k', 2, 256, 2);
    const stacked = concatLinear([toLinearWeight(q), toLinearWeight(v)]);
    expect(stacked.kind).toBe('stack');
    expect(maxDiff(linearToF32(stacked), Float32Array.from([...dequantize(q), ...linearToF32(toLinearWeight(v))]))).toBeLessThan(1e-7);
    const merged = concatLinear([toLinearWeight(weight('q5_0', 2, 256, 4)), toLinearWeight(weight('q5_1', 3, 256, 5))]);
    expect(merged.kind).toBe('nbits');
    expect(merged.n).toBe(5);
  });
});
