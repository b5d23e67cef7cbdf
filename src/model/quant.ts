/**
 * Block layouts, dequantization and the two quantizers we need (Q8_0, Q4_0), byte-compatible with ggml.
 *
 * Layouts (little-endian, "d" is an IEEE half):
 * - q8_0: 32 elements in 34 bytes: d, then 32 int8 q. x = d * q.
 * - q4_0: 32 elements in 18 bytes: d, then 16 bytes; byte j holds element j in its low nibble and element j + 16
 *   in its high nibble. x = d * (q - 8).
 * - q4_K: 256 elements in 144 bytes: d, dmin, 12 bytes of packed 6-bit (scale, min) pairs for 8 sub-blocks of 32,
 *   then 128 bytes of nibbles. Each 64-element chunk c uses bytes qs[32c .. 32c+31]: low nibbles are sub-block
 *   2c, high nibbles sub-block 2c+1. x = d * scale[j] * q - dmin * min[j].
 * - q6_K: 256 elements in 210 bytes: ql[128] (low 4 bits), qh[64] (high 2 bits), 16 int8 scales (one per 16
 *   elements), then d. Each 128-element half h uses ql[64h ..], qh[32h ..], scales[8h ..]; x = d * scale * (q - 32).
 *
 * These run at load time (and in the model generator), so they favour typed-array loops with no per-element
 * allocation. Hosts are assumed little-endian, as ggml assumes.
 */
import { QuantShapeError } from './errors.js';
import type { TensorType, WeightTensor } from './types.js';

export const QK = 32;
export const QK_K = 256;

const BLOCK: Record<TensorType, { elements: number; bytes: number }> = {
  f32: { elements: 1, bytes: 4 },
  f16: { elements: 1, bytes: 2 },
  bf16: { elements: 1, bytes: 2 },
  q8_0: { elements: QK, bytes: 34 },
  q4_0: { elements: QK, bytes: 18 },
  q4_k: { elements: QK_K, bytes: 144 },
  q6_k: { elements: QK_K, bytes: 210 },
};

/** Elements per block: 1 for f32/f16/bf16, 32 for q8_0/q4_0, 256 for the K-quants. */
export function blockSize(type: TensorType): number {
  return BLOCK[type].elements;
}

/** Bytes per block. */
export function blockBytes(type: TensorType): number {
  return BLOCK[type].bytes;
}

/** Bytes of one row of `cols` elements. `cols` must be a whole number of blocks. */
export function bytesPerRow(type: TensorType, cols: number): number {
  const { elements, bytes } = BLOCK[type];
  if (!Number.isInteger(cols) || cols < 0 || cols % elements !== 0) {
    throw new QuantShapeError(`a row of ${cols} elements is not a whole number of ${type} blocks of ${elements}`);
  }
  return (cols / elements) * bytes;
}

/** Bytes of a tensor of `elements` elements (a whole number of blocks). */
export function tensorBytes(type: TensorType, elements: number): number {
  return bytesPerRow(type, elements);
}

// ---------------------------------------------------------------------------------------------------------------
// Half and bfloat16 conversions

let halfTable: Float32Array | undefined;

/** f16 bits → f32, through a 256 KiB table built once (the hot path of every dequantizer). */
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = halfBitsToFloatSlow(h);
  halfTable = table;
  return table;
}

function halfBitsToFloatSlow(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Converts IEEE half bits to a number. */
export function f16ToF32(bits: number): number {
  return halfToFloatTable()[bits & 0xffff]!;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Converts a number to IEEE half bits, rounding to nearest even (as numpy and ggml's F16C path do). */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  return f32BitsToF16(scratchU32[0]!);
}

function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // Inf, or a quiet NaN
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // overflow → infinity
  if (e <= 0) {
    // Subnormal half (or zero): shift the full 24-bit mantissa into place, rounding to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is still correct, up to Inf
  return sign | h;
}

/** Converts bfloat16 bits to a number. */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** Converts a number to bfloat16 bits, rounding to nearest even (as PyTorch does). */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts a whole f32 array to f16 (little-endian bytes). */
export function f32ArrayToF16(src: Float32Array): Uint8Array {
  const out = new Uint16Array(src.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16(bits[i]!);
  return new Uint8Array(out.buffer);
}

/** Converts a whole f32 array to bf16 (little-endian bytes). */
export function f32ArrayToBf16(src: Float32Array): Uint8Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16(src[i]!);
  return new Uint8Array(out.buffer);
}

// ---------------------------------------------------------------------------------------------------------------
// Dequantization

/** Rows × columns of a tensor: the last dimension is the row (contiguous), everything before it counts rows. */
export function rowsAndCols(shape: readonly number[]): { rows: number; cols: number } {
  if (shape.length === 0) return { rows: 1, cols: 1 };
  const cols = shape[shape.length - 1]!;
  let rows = 1;
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i]!;
  return { rows, cols };
}

/**
 * The whole tensor as f32, in `shape` order. For an f32 tensor whose data is 4-byte aligned this is a view over
 * `t.data` (no copy), so do not write into it unless you own `t`.
 */
export function dequantize(t: WeightTensor): Float32Array {
  return dequantizeRows(t, 0, rowsAndCols(t.shape).rows);
}

/**
 * Rows [rowStart, rowStart + rowCount) of a tensor as f32 (a row is the last dimension), reading only those
 * rows' bytes. This is how to look up embeddings in a quantized `token_embd`: row `id` is token `id`'s vector.
 */
export function dequantizeRows(t: WeightTensor, rowStart: number, rowCount: number): Float32Array {
  const { rows, cols: width } = rowsAndCols(t.shape);
  if (!Number.isInteger(rowStart) || !Number.isInteger(rowCount) || rowStart < 0 || rowCount < 0 || rowStart + rowCount > rows) {
    throw new RangeError(`rows ${rowStart}..${rowStart + rowCount} out of range for ${t.name} with ${rows} rows`);
  }
  const rowBytes = bytesPerRow(t.type, width);
  const begin = rowStart * rowBytes;
  const end = begin + rowCount * rowBytes;
  if (end > t.data.byteLength) {
    throw new QuantShapeError(`${t.name}: ${t.data.byteLength} bytes of data, but its shape needs ${rows * rowBytes}`);
  }
  const bytes = t.data.subarray(begin, end);
  if (t.type === 'f32' && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, rowCount * width);
  }
  const out = new Float32Array(rowCount * width);
  dequantizeInto(t.type, bytes, out);
  return out;
}

/**
 * Decodes `out.length` elements stored as `type` at the start of `src` into `out`. `out.length` must be a whole
 * number of blocks. The low-level routine behind dequantize(), for callers that reuse an output buffer.
 */
export function dequantizeInto(type: TensorType, src: Uint8Array, out: Float32Array): void {
  const n = out.length;
  const need = tensorBytes(type, n);
  if (src.byteLength < need) throw new QuantShapeError(`${need} bytes of ${type} needed, ${src.byteLength} given`);
  switch (type) {
    case 'f32':
      out.set(new Float32Array(...alignedView(src, need, 4), n));
      return;
    case 'f16': {
      const table = halfToFloatTable();
      const h = new Uint16Array(...alignedView(src, need, 2), n);
      for (let i = 0; i < n; i++) out[i] = table[h[i]!]!;
      return;
    }
    case 'bf16': {
      const h = new Uint16Array(...alignedView(src, need, 2), n);
      const o = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) o[i] = h[i]! << 16;
      return;
    }
    case 'q8_0':
      return dequantQ8_0(src, out);
    case 'q4_0':
      return dequantQ4_0(src, out);
    case 'q4_k':
      return dequantQ4_K(src, out);
    case 'q6_k':
      return dequantQ6_K(src, out);
  }
}

/** (buffer, byteOffset) of the first `bytes` bytes of `src`, copied only when a typed view would be misaligned. */
function alignedView(src: Uint8Array, bytes: number, align: number): [ArrayBufferLike, number] {
  if (src.byteOffset % align === 0) return [src.buffer, src.byteOffset];
  return [src.slice(0, bytes).buffer, 0];
}

function dequantQ8_0(src: Uint8Array, out: Float32Array): void {
  const table = halfToFloatTable();
  const q = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
  const blocks = out.length / QK;
  for (let b = 0, p = 0, o = 0; b < blocks; b++, p += 34, o += QK) {
    const d = table[src[p]! | (src[p + 1]! << 8)]!;
    const base = p + 2;
    for (let j = 0; j < QK; j++) out[o + j] = d * q[base + j]!;
  }
}

function dequantQ4_0(src: Uint8Array, out: Float32Array): void {
  const table = halfToFloatTable();
  const blocks = out.length / QK;
  for (let b = 0, p = 0, o = 0; b < blocks; b++, p += 18, o += QK) {
    const d = table[src[p]! | (src[p + 1]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const byte = src[p + 2 + j]!;
      out[o + j] = d * ((byte & 0x0f) - 8);
      out[o + j + 16] = d * ((byte >>> 4) - 8);
    }
  }
}

function dequantQ4_K(src: Uint8Array, out: Float32Array): void {
  const table = halfToFloatTable();
  const blocks = out.length / QK_K;
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  for (let b = 0, p = 0, o = 0; b < blocks; b++, p += 144, o += QK_K) {
    const d = table[src[p]! | (src[p + 1]! << 8)]!;
    const dmin = table[src[p + 2]! | (src[p + 3]! << 8)]!;
    const s = p + 4; // 12 bytes of packed 6-bit scales and mins
    // Sub-blocks 0..3 keep their 6 bits in bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 take their low
    // 4 bits from bytes 8..11 and their top 2 bits from the spare top bits of bytes 0..7.
    for (let j = 0; j < 4; j++) {
      scales[j] = d * (src[s + j]! & 63);
      mins[j] = dmin * (src[s + j + 4]! & 63);
    }
    for (let j = 4; j < 8; j++) {
      const sc = (src[s + j + 4]! & 0x0f) | ((src[s + j - 4]! >>> 6) << 4);
      const m = (src[s + j + 4]! >>> 4) | ((src[s + j]! >>> 6) << 4);
      scales[j] = d * sc;
      mins[j] = dmin * m;
    }
    const qs = p + 16;
    for (let c = 0; c < 4; c++) {
      const d1 = scales[2 * c]!, m1 = mins[2 * c]!;
      const d2 = scales[2 * c + 1]!, m2 = mins[2 * c + 1]!;
      const q = qs + 32 * c;
      const y = o + 64 * c;
      for (let l = 0; l < 32; l++) {
        const byte = src[q + l]!;
        out[y + l] = d1 * (byte & 0x0f) - m1;
        out[y + 32 + l] = d2 * (byte >>> 4) - m2;
      }
    }
  }
}

function dequantQ6_K(src: Uint8Array, out: Float32Array): void {
  const table = halfToFloatTable();
  const signed = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
  const blocks = out.length / QK_K;
  for (let b = 0, p = 0, o = 0; b < blocks; b++, p += 210, o += QK_K) {
    const d = table[src[p + 208]! | (src[p + 209]! << 8)]!;
    for (let h = 0; h < 2; h++) {
      const ql = p + 64 * h;
      const qh = p + 128 + 32 * h;
      const sc = p + 192 + 8 * h;
      const y = o + 128 * h;
      for (let l = 0; l < 32; l++) {
        const is = l >>> 4; // scales change every 16 elements
        const hi = src[qh + l]!;
        const lo0 = src[ql + l]!;
        const lo1 = src[ql + l + 32]!;
        const q1 = ((lo0 & 0x0f) | ((hi & 3) << 4)) - 32;
        const q2 = ((lo1 & 0x0f) | (((hi >>> 2) & 3) << 4)) - 32;
        const q3 = ((lo0 >>> 4) | (((hi >>> 4) & 3) << 4)) - 32;
        const q4 = ((lo1 >>> 4) | (((hi >>> 6) & 3) << 4)) - 32;
        out[y + l] = d * signed[sc + is]! * q1;
        out[y + l + 32] = d * signed[sc + is + 2]! * q2;
        out[y + l + 64] = d * signed[sc + is + 4]! * q3;
        out[y + l + 96] = d * signed[sc + is + 6]! * q4;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Quantization (ggml's reference quantizers, so files we write quantize as llama.cpp's would)

/** Quantizes to Q8_0. `src.length` must be a multiple of 32. */
export function quantizeQ8_0(src: Float32Array): Uint8Array {
  if (src.length % QK !== 0) throw new QuantShapeError(`Q8_0 needs a multiple of ${QK} elements, got ${src.length}`);
  const blocks = src.length / QK;
  const out = new Uint8Array(blocks * 34);
  const q = new Int8Array(out.buffer);
  for (let b = 0, i = 0, p = 0; b < blocks; b++, i += QK, p += 34) {
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const v = src[i + j]!;
      const a = v < 0 ? -v : v;
      if (a > amax) amax = a;
    }
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    const h = f32ToF16(d);
    out[p] = h & 0xff;
    out[p + 1] = h >>> 8;
    // C's roundf (halves away from zero); |v| <= 127, so `| 0` truncation is safe and fast.
    for (let j = 0; j < QK; j++) {
      const v = src[i + j]! * id;
      q[p + 2 + j] = v < 0 ? -((0.5 - v) | 0) : (v + 0.5) | 0;
    }
  }
  return out;
}

/** Quantizes to Q4_0. `src.length` must be a multiple of 32. */
export function quantizeQ4_0(src: Float32Array): Uint8Array {
  if (src.length % QK !== 0) throw new QuantShapeError(`Q4_0 needs a multiple of ${QK} elements, got ${src.length}`);
  const blocks = src.length / QK;
  const out = new Uint8Array(blocks * 18);
  for (let b = 0, i = 0, p = 0; b < blocks; b++, i += QK, p += 18) {
    // The value of largest magnitude, sign kept, maps to -8 exactly, so the full range [-8, 7] is used.
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = src[i + j]!;
      const a = v < 0 ? -v : v;
      if (a > amax) {
        amax = a;
        max = v;
      }
    }
    const d = max / -8;
    const id = d ? 1 / d : 0;
    const h = f32ToF16(d);
    out[p] = h & 0xff;
    out[p + 1] = h >>> 8;
    for (let j = 0; j < 16; j++) {
      // x * id lies in [-8, 8], so x * id + 8.5 >= 0 and `| 0` is the truncation ggml does.
      const lo = Math.min(15, (src[i + j]! * id + 8.5) | 0);
      const hi = Math.min(15, (src[i + j + 16]! * id + 8.5) | 0);
      out[p + 2 + j] = lo | (hi << 4);
    }
  }
  return out;
}

/** Encodes f32 values as `type` (f32, f16, bf16, q8_0 or q4_0). */
export function encodeTensor(type: TensorType, src: Float32Array): Uint8Array {
  switch (type) {
    case 'f32':
      return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    case 'f16':
      return f32ArrayToF16(src);
    case 'bf16':
      return f32ArrayToBf16(src);
    case 'q8_0':
      return quantizeQ8_0(src);
    case 'q4_0':
      return quantizeQ4_0(src);
    default:
      throw new QuantShapeError(`no quantizer for ${type}`);
  }
}
