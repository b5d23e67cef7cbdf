import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_TENSOR_ELEMENTS,
  INT8_BLOCK_SIZE,
  MAX_INT8_SCALE,
  decodeTensor,
  encodeTensor,
  encodeTensorInto,
  encodedByteLength,
  f16BitsToF32Bits,
  f32BitsToF16Bits,
  fromFloat16Bits,
  shapeElements,
  toFloat16Bits,
  type WireDtype,
} from '../../src/wire/tensor-codec.js';
import {
  MalformedTensorError,
  NonFiniteTensorError,
  TensorTooLargeError,
  UnsupportedCodecError,
} from '../../src/wire/errors.js';
import { seededRandom } from '../support/random.js';

function gaussian(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r() || 1e-12;
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const floatOf = (bits: number) => ((u32[0] = bits >>> 0), f32[0]!);

/** All finite non-negative f16 values in increasing order, with their bit patterns (0x0000..0x7bff). */
const F16_POSITIVE = Array.from({ length: 0x7c00 }, (_, h) => fromFloat16Bits(h));

/** Reference f32 → f16: nearest representable value by binary search, ties to the even bit pattern. */
function referenceF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // 65520 = halfway between 65504 and 2^16 rounds (to even) to 2^16, i.e. Infinity.
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = F16_POSITIVE.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (F16_POSITIVE[mid]! <= a) lo = mid;
    else hi = mid;
  }
  let h: number;
  if (a <= F16_POSITIVE[lo]!) h = lo;
  else {
    const dLo = a - F16_POSITIVE[lo]!;
    const dHi = F16_POSITIVE[hi]! - a;
    h = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  }
  return sign | h;
}

/** IEEE binary16 value from its fields, for finite and infinite patterns. */
function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * 2 ** (exp - 15) * (1 + mant / 1024);
}

describe('f16 scalar conversion', () => {
  it('round-trips every f16 bit pattern through f32 exactly', () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const bits = f16BitsToF32Bits(h);
      const back = f32BitsToF16Bits(bits);
      const exp = (h >>> 10) & 0x1f;
      const mant = h & 0x3ff;
      const ok =
        exp === 0x1f && mant !== 0
          ? Number.isNaN(floatOf(bits)) && (back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0 && (back & 0x8000) === (h & 0x8000)
          : back === h && Object.is(floatOf(bits), f16Value(h));
      if (!ok) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  it('decodes subnormals, zeros and infinities exactly', () => {
    expect(fromFloat16Bits(0x0001)).toBe(2 ** -24);
    expect(fromFloat16Bits(0x03ff)).toBe(1023 * 2 ** -24);
    expect(fromFloat16Bits(0x0400)).toBe(2 ** -14);
    expect(fromFloat16Bits(0x7bff)).toBe(65504);
    expect(fromFloat16Bits(0x7c00)).toBe(Infinity);
    expect(fromFloat16Bits(0xfc00)).toBe(-Infinity);
    expect(Object.is(fromFloat16Bits(0x8000), -0)).toBe(true);
    expect(fromFloat16Bits(0x3c00)).toBe(1);
    expect(fromFloat16Bits(0xc000)).toBe(-2);
  });

  it('rounds to nearest even, including ties, overflow and subnormals', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [1 + 2 ** -11, 0x3c00], // tie → even (down)
      [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00], // tie between 65504 and 2^16 → even → Infinity
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal → 0
      [2 ** -25 * 1.0001, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units → 2
      [2 ** -26, 0x0000],
      [-(2 ** -26), 0x8000],
      [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the largest subnormal into the smallest normal
      [1e-40, 0x0000], // f32 subnormal
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [0, 0x0000],
      [-0, 0x8000],
    ];
    for (const [x, h] of cases) expect(toFloat16Bits(x), `f16(${x})`).toBe(h);
    const nan = toFloat16Bits(Number.NaN);
    expect((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0).toBe(true);
  });

  it('matches a reference on random f32 bit patterns and on every f16 midpoint', () => {
    const r = seededRandom(1);
    for (let i = 0; i < 100_000; i++) {
      const bits = Math.floor(r() * 2 ** 32);
      const x = floatOf(bits);
      if (Number.isNaN(x)) continue;
      const got = f32BitsToF16Bits(bits);
      const want = referenceF16(x);
      if (got !== want) expect({ x, got: got.toString(16) }).toEqual({ x, got: want.toString(16) });
    }
    // Values clustered near the f16 range, and all exact midpoints.
    for (let i = 0; i < 100_000; i++) {
      const x = (r() - 0.5) * 2 ** (Math.floor(r() * 44) - 28);
      const got = toFloat16Bits(x);
      const want = referenceF16(Math.fround(x));
      if (got !== want) expect({ x, got: got.toString(16) }).toEqual({ x, got: want.toString(16) });
    }
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (F16_POSITIVE[h]! + F16_POSITIVE[h + 1]!) / 2;
      if (Math.fround(mid) !== mid) continue;
      const want = h % 2 === 0 ? h : h + 1;
      if (toFloat16Bits(mid) !== want) expect({ h, got: toFloat16Bits(mid) }).toEqual({ h, got: want });
      if (toFloat16Bits(-mid) !== (want | 0x8000)) expect(toFloat16Bits(-mid)).toBe(want | 0x8000);
    }
  });

  it('keeps relative error ≤ 2^-11 in the normal range', () => {
    const r = seededRandom(2);
    let worst = 0;
    for (let i = 0; i < 200_000; i++) {
      const x = Math.fround((r() < 0.5 ? -1 : 1) * 2 ** (r() * 30 - 14) * (1 + r()));
      if (Math.abs(x) < 2 ** -14 || Math.abs(x) > 65504) continue;
      const rel = Math.abs(fromFloat16Bits(toFloat16Bits(x)) - x) / Math.abs(x);
      if (rel > worst) worst = rel;
    }
    expect(worst).toBeLessThanOrEqual(2 ** -11);
    expect(worst).toBeGreaterThan(2 ** -12); // the bound is tight, so the test can see a regression
  });
});

describe('tensor encode/decode', () => {
  const dtypes: WireDtype[] = ['f32', 'f16', 'int8'];
  const shapes = [[1, 576], [7, 64], [3, 200], [2, 1], [1, 63], [4, 65], [0, 8], [5, 0], [2, 3, 130]];

  it('round-trips every dtype and shape within its error bound', () => {
    for (const dtype of dtypes) {
      for (const shape of shapes) {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = gaussian(n, n + shape.length, 3);
        const bytes = encodeTensor(data, shape, dtype);
        expect(bytes.length).toBe(encodedByteLength(dtype, shape));
        const back = decodeTensor(bytes, shape, dtype);
        expect(back.length).toBe(n);
        if (dtype === 'f32') expect(back).toEqual(data);
        if (dtype === 'f16') {
          for (let i = 0; i < n; i++) {
            const x = data[i]!;
            expect(Math.abs(back[i]! - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
          }
        }
        if (dtype === 'int8') {
          const last = shape[shape.length - 1]!;
          for (let row = 0; row * last < n; row++) {
            for (let b = 0; b < last; b += INT8_BLOCK_SIZE) {
              const start = row * last + b;
              const end = start + Math.min(INT8_BLOCK_SIZE, last - b);
              let absmax = 0;
              for (let i = start; i < end; i++) absmax = Math.max(absmax, Math.abs(data[i]!));
              for (let i = start; i < end; i++) {
                expect(Math.abs(back[i]! - data[i]!)).toBeLessThanOrEqual(absmax / 127);
              }
            }
          }
        }
      }
    }
  });

  it('lays int8 out as [scales f32 LE][quants int8], blocks of 64 along the last dim', () => {
    const data = Float32Array.from([1, -0.25, 0.6, 0, /* row 2 */ 0, 0, 0, 0]);
    const bytes = encodeTensor(data, [2, 4], 'int8');
    expect(bytes.length).toBe(2 * 4 + 8);
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getFloat32(0, true)).toBe(Math.fround(1 / 127));
    expect(view.getFloat32(4, true)).toBe(0);
    expect([...new Int8Array(bytes.buffer, bytes.byteOffset + 8, 8)]).toEqual([127, -32, 76, 0, 0, 0, 0, 0]);
    // 130 values per row: 3 blocks (64, 64, 2) per row.
    expect(encodedByteLength('int8', [2, 130])).toBe(2 * 3 * 4 + 260);
    expect(encodedByteLength('f16', [2, 130])).toBe(520);
    expect(encodedByteLength('f32', [2, 130])).toBe(1040);
  });

  it('lays f32 and f16 out little-endian', () => {
    const data = Float32Array.from([1, -2]);
    expect([...encodeTensor(data, [2], 'f32')]).toEqual([0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]);
    expect([...encodeTensor(data, [2], 'f16')]).toEqual([0x00, 0x3c, 0x00, 0xc0]);
  });

  it('carries f16 specials: inf, nan, subnormals, signed zero', () => {
    const data = Float32Array.from([Infinity, -Infinity, Number.NaN, 2 ** -24, -(2 ** -20), -0, 1e5]);
    const back = decodeTensor(encodeTensor(data, [7], 'f16'), [7], 'f16');
    expect(back[0]).toBe(Infinity);
    expect(back[1]).toBe(-Infinity);
    expect(Number.isNaN(back[2])).toBe(true);
    expect(back[3]).toBe(2 ** -24);
    expect(back[4]).toBe(-(2 ** -20));
    expect(Object.is(back[5], -0)).toBe(true);
    // issue 7: a finite value beyond the f16 range saturates rather than becoming an infinity
    expect(back[6]).toBe(65504);
  });

  it('int8 handles zeros, huge and tiny magnitudes', () => {
    const data = Float32Array.from([3.4e38, -3.4e38, 1, 0, 1e-45, -1e-45, 0, 0]);
    const back = decodeTensor(encodeTensor(data, [2, 4], 'int8'), [2, 4], 'int8');
    for (const v of back) expect(Number.isFinite(v)).toBe(true);
    expect(Math.abs(back[0]! - 3.4e38) / 3.4e38).toBeLessThan(0.01);
    expect(back[3]).toBe(0);
  });

  it('encodes into an offset inside a larger buffer (unaligned)', () => {
    const data = gaussian(130, 9);
    for (const dtype of dtypes) {
      const size = encodedByteLength(dtype, [2, 65]);
      const out = new Uint8Array(size + 7);
      expect(encodeTensorInto(data, [2, 65], dtype, out, 3)).toBe(size);
      const direct = encodeTensor(data, [2, 65], dtype);
      expect(out.subarray(3, 3 + size)).toEqual(direct);
      expect(decodeTensor(out.subarray(3, 3 + size), [2, 65], dtype)).toEqual(decodeTensor(direct, [2, 65], dtype));
    }
  });

  it('encodes from a Float32Array view with an offset', () => {
    const base = gaussian(100, 4);
    const view = base.subarray(10, 74);
    for (const dtype of dtypes) {
      expect(decodeTensor(encodeTensor(view, [64], dtype), [64], dtype)).toEqual(
        decodeTensor(encodeTensor(view.slice(), [64], dtype), [64], dtype),
      );
    }
  });
});

describe('tensor validation', () => {
  it('rejects payload sizes that do not match the shape', () => {
    const bytes = encodeTensor(gaussian(128, 1), [2, 64], 'f16');
    expect(() => decodeTensor(bytes.subarray(1), [2, 64], 'f16')).toThrow(MalformedTensorError);
    expect(() => decodeTensor(bytes, [2, 65], 'f16')).toThrow(/needs 260 payload bytes, got 256/);
    expect(() => decodeTensor(new Uint8Array(10), [3], 'f32')).toThrow(MalformedTensorError);
    expect(() => decodeTensor(new Uint8Array(4 + 63), [1, 64], 'int8')).toThrow(MalformedTensorError);
  });

  it('rejects unknown dtypes and bad shapes', () => {
    expect(() => decodeTensor(new Uint8Array(4), [2], 'bf16' as WireDtype)).toThrow(UnsupportedCodecError);
    expect(() => encodeTensor(new Float32Array(2), [2], 'q4' as WireDtype)).toThrow(UnsupportedCodecError);
    for (const shape of [[], [1, 2, 3, 4, 5, 6, 7, 8, 9], [-1], [1.5], [Number.NaN], ['2'], [2 ** 53]]) {
      expect(() => decodeTensor(new Uint8Array(0), shape as number[], 'f32'), JSON.stringify(shape)).toThrow(
        /malformed tensor|exceeds/,
      );
    }
    expect(() => encodeTensor(new Float32Array(5), [2, 2], 'f32')).toThrow(MalformedTensorError);
  });

  it('caps elements before allocating', () => {
    expect(() => decodeTensor(new Uint8Array(0), [1 << 20, 1 << 20], 'f32')).toThrow(TensorTooLargeError);
    expect(() => decodeTensor(new Uint8Array(0), [DEFAULT_MAX_TENSOR_ELEMENTS + 1], 'f16')).toThrow(TensorTooLargeError);
    expect(() => decodeTensor(new Uint8Array(400), [100], 'f32', { maxElements: 99 })).toThrow(TensorTooLargeError);
    expect(shapeElements([3, 0, 2 ** 40])).toBe(0);
  });

  it('rejects invalid int8 scales', () => {
    const bytes = encodeTensor(gaussian(64, 2), [1, 64], 'int8');
    for (const bad of [Number.NaN, -1, Infinity, MAX_INT8_SCALE * 1.001]) {
      const copy = bytes.slice();
      new DataView(copy.buffer).setFloat32(0, bad, true);
      expect(() => decodeTensor(copy, [1, 64], 'int8'), String(bad)).toThrow(MalformedTensorError);
    }
    const ok = bytes.slice();
    new DataView(ok.buffer).setFloat32(0, MAX_INT8_SCALE, true);
    ok[4] = 0x81; // -127
    const back = decodeTensor(ok, [1, 64], 'int8');
    expect(Number.isFinite(back[0]!)).toBe(true);
    expect(back[0]).toBe(Math.fround(-127 * MAX_INT8_SCALE));
    ok[5] = 0x80; // -128 is never written by the encoder, and rejected
    expect(() => decodeTensor(ok, [1, 64], 'int8')).toThrow(/-128/);
    expect(127 * MAX_INT8_SCALE).toBeLessThanOrEqual(3.4028234663852886e38);
  });

  it('refuses to int8-encode non-finite values', () => {
    expect(() => encodeTensor(Float32Array.from([1, Number.NaN]), [2], 'int8')).toThrow(NonFiniteTensorError);
    expect(() => encodeTensor(Float32Array.from([Infinity]), [1], 'int8')).toThrow(NonFiniteTensorError);
  });
});

describe('codec speed', () => {
  it('converts a million values to and from f16 and int8 quickly', () => {
    const n = 1 << 20;
    const data = gaussian(n, 5);
    for (const dtype of ['f16', 'int8'] as const) {
      const shape = [n / 1024, 1024];
      encodeTensor(data, shape, dtype);
      let t = performance.now();
      const bytes = encodeTensor(data, shape, dtype);
      const enc = performance.now() - t;
      decodeTensor(bytes, shape, dtype);
      t = performance.now();
      decodeTensor(bytes, shape, dtype);
      const dec = performance.now() - t;
      console.log(`${dtype}: encode ${((n / enc) * 1e-3).toFixed(0)} M values/s, decode ${((n / dec) * 1e-3).toFixed(0)} M values/s`);
      expect(enc).toBeLessThan(1000);
      expect(dec).toBeLessThan(1000);
    }
  });
});
