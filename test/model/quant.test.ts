import { describe, expect, it } from 'vitest';
import {
  bf16ToF32,
  blockSize,
  bytesPerRow,
  dequantize,
  dequantizeRows,
  f16ToF32,
  f32ArrayToF16,
  f32ToBf16,
  f32ToF16,
  quantizeQ4_0,
  quantizeQ8_0,
} from '../../src/model/quant.js';
import { QuantShapeError } from '../../src/model/errors.js';
import type { TensorType, WeightTensor } from '../../src/model/types.js';
import { randomFloats } from '../support/random.js';

const tensor = (type: TensorType, shape: number[], data: Uint8Array): WeightTensor => ({ name: 't', type, shape, data });

describe('half precision', () => {
  it('converts known values with round-to-nearest-even', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(0.5)).toBe(0x3800);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // halfway to 65536: ties to even → infinity
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
    expect(f32ToF16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // halfway, ties to even (0)
    expect(f32ToF16(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 ulp: ties to even (2)
    expect(f32ToF16(2 ** -14)).toBe(0x0400); // smallest normal
    expect(f32ToF16(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up across the subnormal boundary
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and 1+2^-10: even is 1
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // halfway between 1+2^-10 and 1+2^-9: even is the upper
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above halfway
    expect(f16ToF32(0x3555)).toBeCloseTo(0.33325195, 7);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0xfbff)).toBe(-65504);
  });

  it('round-trips every finite half exactly', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const x = f16ToF32(h);
      if (!Number.isNaN(x) && f32ToF16(x) !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
  });

  it('bulk conversion equals the scalar one', () => {
    const v = randomFloats(1000, 3, 100);
    const bulk = new Uint16Array(f32ArrayToF16(v).buffer);
    for (let i = 0; i < v.length; i++) expect(bulk[i]).toBe(f32ToF16(v[i]!));
    const back = dequantize(tensor('f16', [1000], f32ArrayToF16(v)));
    for (let i = 0; i < v.length; i++) expect(Math.abs(back[i]! - v[i]!)).toBeLessThanOrEqual(Math.abs(v[i]!) * 2 ** -11 + 1e-7);
  });

  it('bfloat16', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc040)).toBe(-3);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // halfway: ties to even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    const data = new Uint8Array(new Uint16Array([0x3f80, 0xc040, 0x0000, 0x4049]).buffer);
    expect(Array.from(dequantize(tensor('bf16', [4], data)))).toEqual([1, -3, 0, bf16ToF32(0x4049)]);
  });
});

describe('block geometry', () => {
  it('sizes', () => {
    expect(blockSize('q8_0')).toBe(32);
    expect(blockSize('q4_k')).toBe(256);
    expect(blockSize('f32')).toBe(1);
    expect(bytesPerRow('f32', 10)).toBe(40);
    expect(bytesPerRow('f16', 10)).toBe(20);
    expect(bytesPerRow('bf16', 10)).toBe(20);
    expect(bytesPerRow('q8_0', 64)).toBe(68);
    expect(bytesPerRow('q4_0', 64)).toBe(36);
    expect(bytesPerRow('q4_k', 512)).toBe(288);
    expect(bytesPerRow('q6_k', 256)).toBe(210);
    expect(() => bytesPerRow('q8_0', 33)).toThrow(QuantShapeError);
    expect(() => bytesPerRow('q6_k', 128)).toThrow(QuantShapeError);
  });
});

describe('Q8_0', () => {
  it('quantize → dequantize stays within half a step per block', () => {
    const n = 32 * 200;
    const v = randomFloats(n, 11, 3);
    v.fill(0, 64, 96); // an all-zero block must give d = 0 and exact zeros
    v[200] = 50; // an outlier widens only its own block
    const q = quantizeQ8_0(v);
    expect(q.byteLength).toBe((n / 32) * 34);
    const back = dequantize(tensor('q8_0', [200, 32], q));
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(v[b * 32 + j]!));
      const step = amax / 127;
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        expect(Math.abs(back[i]! - v[i]!)).toBeLessThanOrEqual(step * 0.5 + amax * 2 ** -11 + 1e-9);
      }
    }
    expect(Array.from(back.subarray(64, 96)).every((x) => x === 0)).toBe(true);
  });

  it('lays out d then 32 signed bytes', () => {
    const v = new Float32Array(32).map((_, i) => (i - 16) / 16);
    const q = quantizeQ8_0(v);
    expect(f16ToF32(q[0]! | (q[1]! << 8))).toBeCloseTo(1 / 127, 6);
    const ints = new Int8Array(q.buffer, 2, 32);
    expect(ints[0]).toBe(-127);
    expect(ints[16]).toBe(0);
    expect(ints[31]).toBe(Math.round((15 / 16) * 127));
  });
});

describe('Q4_0', () => {
  it('is exact for values on its grid, with low nibbles = elements 0..15', () => {
    const v = new Float32Array(32).map((_, i) => ((i % 16) - 8) * 0.25);
    const q = quantizeQ4_0(v);
    expect(q.byteLength).toBe(18);
    expect(f16ToF32(q[0]! | (q[1]! << 8))).toBe(0.25); // d = max / -8 with max = -2
    for (let j = 0; j < 16; j++) expect(q[2 + j]).toBe(j | (j << 4));
    expect(Array.from(dequantize(tensor('q4_0', [32], q)))).toEqual(Array.from(v));
  });

  it('quantize → dequantize error is at most one step per block', () => {
    const n = 32 * 300;
    const v = randomFloats(n, 5, 0.5);
    const back = dequantize(tensor('q4_0', [n], quantizeQ4_0(v)));
    let sq = 0;
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(v[b * 32 + j]!));
      const step = amax / 8;
      for (let j = 0; j < 32; j++) {
        const e = Math.abs(back[b * 32 + j]! - v[b * 32 + j]!);
        sq += e * e;
        expect(e).toBeLessThanOrEqual(step * (1 + 2 ** -8) + 1e-9);
      }
    }
    // Typical error is about a third of a step, not the bound.
    expect(Math.sqrt(sq / n)).toBeLessThan(0.5 / 8 * 0.5);
  });
});

/** Packs 8 (scale, min) pairs of 6 bits the way Q4_K stores them in 12 bytes. */
function packQ4KScales(sc: number[], m: number[]): number[] {
  const out = new Array<number>(12).fill(0);
  for (let j = 0; j < 4; j++) {
    out[j] = (sc[j]! & 63) | ((sc[j + 4]! >> 4) << 6);
    out[j + 4] = (m[j]! & 63) | ((m[j + 4]! >> 4) << 6);
    out[j + 8] = (sc[j + 4]! & 15) | ((m[j + 4]! & 15) << 4);
  }
  return out;
}

function q4kBlock(d: number, dmin: number, sc: number[], m: number[], q: (e: number) => number): Uint8Array {
  const b = new Uint8Array(144);
  const dh = f32ToF16(d);
  const mh = f32ToF16(dmin);
  b[0] = dh & 255;
  b[1] = dh >> 8;
  b[2] = mh & 255;
  b[3] = mh >> 8;
  b.set(packQ4KScales(sc, m), 4);
  for (let e = 0; e < 256; e++) {
    const chunk = e >> 6;
    const within = e & 63;
    const index = 16 + 32 * chunk + (within & 31);
    b[index]! |= within < 32 ? q(e) : q(e) << 4;
  }
  return b;
}

describe('Q4_K', () => {
  it('decodes a literal block: scale j+1, no mins, all nibbles 1 (low) / 2 (high)', () => {
    const b = new Uint8Array(144);
    b.set([0x00, 0x38], 0); // d = 0.5
    b.set([0x00, 0x00], 2); // dmin = 0
    // scales 1..8: sub-blocks 0..3 in bytes 0..3, 4..7 split: low 4 bits in bytes 8..11 (5..8 fit in 4 bits).
    b.set([1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8], 4);
    b.fill(0x21, 16);
    const y = dequantize(tensor('q4_k', [256], b));
    for (let e = 0; e < 256; e++) {
      const sub = e >> 5;
      const nibble = (e & 63) < 32 ? 1 : 2;
      expect(y[e]).toBe(0.5 * (sub + 1) * nibble);
    }
  });

  it('decodes 6-bit scales and mins, including their split high bits', () => {
    const sc = [63, 1, 17, 40, 33, 62, 48, 5];
    const m = [0, 63, 20, 9, 60, 17, 34, 49];
    const q = (e: number) => (e * 7 + 3) % 16;
    const d = 0.015625;
    const dmin = 0.0078125;
    const blocks = [q4kBlock(d, dmin, sc, m, q), q4kBlock(2, 1, m, sc, (e) => 15 - q(e))];
    const data = new Uint8Array(288);
    data.set(blocks[0]!, 0);
    data.set(blocks[1]!, 144);
    const y = dequantize(tensor('q4_k', [2, 256], data));
    for (let e = 0; e < 256; e++) {
      const sub = e >> 5;
      expect(y[e]).toBeCloseTo(d * sc[sub]! * q(e) - dmin * m[sub]!, 6);
      expect(y[256 + e]).toBeCloseTo(2 * m[sub]! * (15 - q(e)) - 1 * sc[sub]!, 6);
    }
    // Row access reads only the second block.
    expect(Array.from(dequantizeRows(tensor('q4_k', [2, 256], data), 1, 1))).toEqual(Array.from(y.subarray(256)));
  });
});

function q6kBlock(d: number, scales: number[], q: (e: number) => number): Uint8Array {
  const b = new Uint8Array(210);
  for (let e = 0; e < 256; e++) {
    const value = q(e) + 32; // stored unsigned 0..63
    const half = e >> 7;
    const within = e & 127;
    const k = within >> 5; // which 32-element quarter
    const l = within & 31;
    const ql = 64 * half + l + (k & 1 ? 32 : 0);
    b[ql]! |= k < 2 ? value & 15 : (value & 15) << 4;
    b[128 + 32 * half + l]! |= (value >> 4) << (2 * k);
  }
  const s = new Int8Array(b.buffer, 192, 16);
  scales.forEach((v, i) => (s[i] = v));
  const dh = f32ToF16(d);
  b[208] = dh & 255;
  b[209] = dh >> 8;
  return b;
}

describe('Q6_K', () => {
  it('decodes a literal block: d 1, scales 1, quants from their 6-bit codes', () => {
    const b = new Uint8Array(210);
    b.fill(0x00, 0, 128); // low 4 bits 0
    b.fill(0xff, 128, 192); // high 2 bits 3 everywhere → code 48 → q = 16
    new Int8Array(b.buffer, 192, 16).fill(1);
    b.set([0x00, 0x3c], 208); // d = 1
    expect(Array.from(dequantize(tensor('q6_k', [256], b))).every((x) => x === 16)).toBe(true);
    b.fill(0x00, 128, 192); // code 0 → q = -32
    new Int8Array(b.buffer, 192, 16).fill(-2);
    expect(Array.from(dequantize(tensor('q6_k', [256], b))).every((x) => x === 64)).toBe(true);
  });

  it('decodes every position with its own scale', () => {
    const scales = [-128, -77, -3, 1, 5, 17, 33, 64, 127, -1, 2, -9, 100, 45, -60, 8];
    const q = (e: number) => ((e * 13 + 5) % 64) - 32;
    const d = 0.03125;
    const data = q6kBlock(d, scales, q);
    const y = dequantize(tensor('q6_k', [256], data));
    for (let e = 0; e < 256; e++) {
      // Scales change every 16 elements.
      expect(y[e]).toBeCloseTo(d * scales[e >> 4]! * q(e), 6);
    }
  });
});

describe('row access', () => {
  it('dequantizeRows equals the matching slice of dequantize, for every type', () => {
    const rows = 6;
    const cols = 256;
    const v = randomFloats(rows * cols, 9, 1);
    const cases: Array<[TensorType, Uint8Array]> = [
      ['f32', new Uint8Array(v.buffer.slice(0))],
      ['f16', f32ArrayToF16(v)],
      ['q8_0', quantizeQ8_0(v)],
      ['q4_0', quantizeQ4_0(v)],
      ['q4_k', new Uint8Array(Array.from({ length: rows * 144 }, (_, i) => (i * 31) & 255))],
      ['q6_k', new Uint8Array(Array.from({ length: rows * 210 }, (_, i) => (i * 17) & 255))],
    ];
    for (const [type, data] of cases) {
      const t = tensor(type, [rows, cols], data);
      const full = dequantize(t);
      expect(full.length).toBe(rows * cols);
      expect(Array.from(dequantizeRows(t, 2, 3))).toEqual(Array.from(full.subarray(2 * cols, 5 * cols)));
      expect(() => dequantizeRows(t, 5, 2)).toThrow(RangeError);
    }
  });

  it('works on misaligned data views', () => {
    const v = randomFloats(64, 1);
    const backing = new Uint8Array(64 * 4 + 1);
    backing.set(new Uint8Array(v.buffer), 1);
    const t = tensor('f32', [2, 32], backing.subarray(1));
    expect(Array.from(dequantize(t))).toEqual(Array.from(v));
    const h = new Uint8Array(129);
    h.set(f32ArrayToF16(v), 1);
    expect(dequantize(tensor('f16', [64], h.subarray(1)))[5]).toBe(f16ToF32(f32ToF16(v[5]!)));
  });
});
