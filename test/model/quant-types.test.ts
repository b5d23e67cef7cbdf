/**
 * The quantizers for Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K: literal blocks decode as ggml defines them, values
 * round-trip within each format's step, and the mixes pick llama-quantize's types. (llama.cpp itself reading the
 * files these write is checked in test/engine/quant-parity.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { QuantShapeError } from '../../src/model/errors.js';
import { mixTensorType, useMoreBits } from '../../src/model/quant-mix.js';
import { dequantize, encodeTensor, f32ToF16 } from '../../src/model/quant.js';
import type { TensorType } from '../../src/model/types.js';
import { randomFloats } from '../support/random.js';

const decode = (type: TensorType, data: Uint8Array, n: number) => dequantize({ name: 't', type, shape: [n], data });
const half = (v: number) => [f32ToF16(v) & 0xff, f32ToF16(v) >>> 8];

describe('literal blocks', () => {
  it('Q4_1: x = d·q + m, element j in byte j low, j + 16 high', () => {
    const b = new Uint8Array(20);
    b.set([...half(0.5), ...half(-1)], 0);
    for (let j = 0; j < 16; j++) b[4 + j] = j | ((15 - j) << 4);
    const y = decode('q4_1', b, 32);
    for (let j = 0; j < 16; j++) {
      expect(y[j]).toBe(0.5 * j - 1);
      expect(y[j + 16]).toBe(0.5 * (15 - j) - 1);
    }
  });

  it('Q5_0 / Q5_1: the fifth bit of element j is bit j of qh', () => {
    const q50 = new Uint8Array(22);
    q50.set(half(0.25), 0);
    q50.set([0x01, 0x00, 0x01, 0x80], 2); // elements 0, 16 and 31 have the fifth bit
    q50.fill(0x00, 6);
    const y = decode('q5_0', q50, 32);
    expect(y[0]).toBe(0); // 16 − 16
    expect(y[1]).toBe(-4); // 0 − 16
    expect(y[16]).toBe(0);
    expect(y[31]).toBe(0);
    const q51 = new Uint8Array(24);
    q51.set([...half(1), ...half(2)], 0);
    q51.set([0xff, 0xff, 0xff, 0xff], 4);
    q51.fill(0xff, 8);
    expect([...decode('q5_1', q51, 32)]).toEqual(new Array(32).fill(33));
  });

  it('Q5_K: element 64c + l takes bit 2c of qh[l], element 64c + 32 + l bit 2c + 1', () => {
    const b = new Uint8Array(176);
    b.set([...half(1), ...half(0)], 0);
    b.set([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1], 4); // every scale 1, every min 0
    b[16 + 3] = 0b0000_0110; // qh[3]: bit 1 (element 32 + 3) and bit 2 (element 64 + 3)
    const y = decode('q5_k', b, 256);
    expect(y[3]).toBe(0);
    expect(y[35]).toBe(16);
    expect(y[67]).toBe(16);
    expect(y[99]).toBe(0);
  });
});

describe('round trips', () => {
  // Worst error per element, as a share of the block's range: one step of 2^bits − 1 levels, rounding to half a step
  // (plus the 6-bit rounding of K scales).
  const cases: Array<[TensorType, number, number]> = [
    ['q4_1', 32, 0.5 / 15],
    ['q5_0', 32, 0.5 / 15],
    ['q5_1', 32, 0.5 / 31],
    ['q4_k', 256, 1 / 15],
    ['q5_k', 256, 1 / 31],
    ['q6_k', 256, 1 / 31],
  ];
  it.each(cases)('%s stays within its step', (type, block, share) => {
    const x = randomFloats(block * 64, 11, 0.1);
    for (let i = 0; i < x.length; i += 37) x[i]! *= 3; // outliers, as real weights have
    const y = decode(type, encodeTensor(type, x), x.length);
    for (let b = 0; b < x.length / block; b++) {
      const part = x.subarray(b * block, (b + 1) * block);
      const range = Math.max(...part) - Math.min(...part);
      for (let i = 0; i < block; i++) expect(Math.abs(y[b * block + i]! - part[i]!)).toBeLessThanOrEqual(range * share * 1.02 + 1e-6);
    }
  });

  it('refuses lengths that are not whole blocks', () => {
    expect(() => encodeTensor('q4_k', new Float32Array(96))).toThrow(QuantShapeError);
    expect(() => encodeTensor('q5_1', new Float32Array(40))).toThrow(QuantShapeError);
  });
});

describe('llama-quantize mixes', () => {
  it('use_more_bits picks the first and last eighth and every third layer between', () => {
    expect(Array.from({ length: 30 }, (_, i) => i).filter((i) => useMoreBits(i, 30))).toEqual([0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
  });

  it('Q4_K_M: Q6_K for the output and for attn_v / ffn_down in those layers, Q4_K elsewhere, fallbacks for 576-wide rows', () => {
    const t = (name: string, cols = 2048) => mixTensorType('q4_k_m', { name, cols, layers: 30, hasOutput: false });
    expect(t('token_embd.weight')).toBe('q6_k'); // tied: the output projection
    expect(t('blk.0.attn_v.weight')).toBe('q6_k');
    expect(t('blk.3.attn_v.weight')).toBe('q4_k');
    expect(t('blk.5.ffn_down.weight')).toBe('q6_k');
    expect(t('blk.5.attn_q.weight')).toBe('q4_k');
    expect(t('blk.3.attn_q.weight', 576)).toBe('q5_0');
    expect(t('blk.0.attn_v.weight', 576)).toBe('q8_0');
    expect(t('token_embd.weight', 576)).toBe('q8_0');
    expect(mixTensorType('q5_k_m', { name: 'blk.3.ffn_gate.weight', cols: 576, layers: 30, hasOutput: false })).toBe('q5_1');
    expect(mixTensorType('q4_k_m', { name: 'token_embd.weight', cols: 2048, layers: 30, hasOutput: true })).toBe('q4_k');
    expect(mixTensorType('q4_0', { name: 'blk.0.ffn_down.weight', cols: 172, layers: 5, hasOutput: false })).toBe('f16');
  });
});
