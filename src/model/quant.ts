/**
 * Block layouts, dequantization and quantizers, byte-compatible with ggml (ggml-common.h's block structs).
 *
 * Layouts (little-endian, "d", "m", "dmin" are IEEE halves):
 * - q8_0: 32 elements in 34 bytes: d, then 32 int8 q. x = d * q.
 * - q4_0: 32 elements in 18 bytes: d, then 16 bytes; byte j holds element j in its low nibble and element j + 16
 *   in its high nibble. x = d * (q - 8).
 * - q4_1: 32 elements in 20 bytes: d, m, then the 16 nibble bytes of q4_0. x = d * q + m.
 * - q5_0: 32 elements in 22 bytes: d, qh (a little-endian uint32 whose bit j is element j's fifth bit), then the
 *   16 nibble bytes of q4_0 (the low four bits). x = d * (q - 16).
 * - q5_1: 32 elements in 24 bytes: d, m, qh, nibbles as q5_0. x = d * q + m.
 * - q4_K: 256 elements in 144 bytes: d, dmin, 12 bytes of packed 6-bit (scale, min) pairs for 8 sub-blocks of 32,
 *   then 128 bytes of nibbles. Each 64-element chunk c uses bytes qs[32c .. 32c+31]: low nibbles are sub-block
 *   2c, high nibbles sub-block 2c+1. x = d * scale[j] * q - dmin * min[j].
 * - q5_K: 256 elements in 176 bytes: d, dmin, the 12 scale bytes of q4_K, qh[32], then q4_K's 128 nibble bytes.
 *   Element 64c + l takes its fifth bit from bit 2c of qh[l], element 64c + 32 + l from bit 2c + 1.
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
  q4_1: { elements: QK, bytes: 20 },
  q5_0: { elements: QK, bytes: 22 },
  q5_1: { elements: QK, bytes: 24 },
  q4_k: { elements: QK_K, bytes: 144 },
  q5_k: { elements: QK_K, bytes: 176 },
  q6_k: { elements: QK_K, bytes: 210 },
};

/** Elements per block: 1 for f32/f16/bf16, 32 for q8_0/q4_0/q4_1/q5_0/q5_1, 256 for the K-quants. */
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
/** Where rows [rowStart, rowStart + rowCount) of a tensor lie among its bytes (rows run along its last dimension). */
export function rowBytes(t: Pick<WeightTensor, 'name' | 'type' | 'shape'>, rowStart: number, rowCount: number): { start: number; length: number; shape: number[] } {
  const { rows, cols } = rowsAndCols(t.shape);
  if (!Number.isInteger(rowStart) || !Number.isInteger(rowCount) || rowStart < 0 || rowCount < 0 || rowStart + rowCount > rows) {
    throw new RangeError(`rows ${rowStart}..${rowStart + rowCount} out of range for ${t.name} with ${rows} rows`);
  }
  const perRow = bytesPerRow(t.type, cols);
  return { start: rowStart * perRow, length: rowCount * perRow, shape: [rowCount, cols] };
}

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
    case 'q4_1':
      return dequantQ4_1(src, out);
    case 'q5_0':
      return dequantQ5(src, out, false);
    case 'q5_1':
      return dequantQ5(src, out, true);
    case 'q4_k':
      return dequantK(src, out, false);
    case 'q5_k':
      return dequantK(src, out, true);
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

function dequantQ4_1(src: Uint8Array, out: Float32Array): void {
  const table = halfToFloatTable();
  const blocks = out.length / QK;
  for (let b = 0, p = 0, o = 0; b < blocks; b++, p += 20, o += QK) {
    const d = table[src[p]! | (src[p + 1]! << 8)]!;
    const m = table[src[p + 2]! | (src[p + 3]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const byte = src[p + 4 + j]!;
      out[o + j] = d * (byte & 0x0f) + m;
      out[o + j + 16] = d * (byte >>> 4) + m;
    }
  }
}

/** q5_0 (x = d * (q - 16)) or, with `withMin`, q5_1 (x = d * q + m). */
function dequantQ5(src: Uint8Array, out: Float32Array, withMin: boolean): void {
  const table = halfToFloatTable();
  const blocks = out.length / QK;
  const size = withMin ? 24 : 22;
  for (let b = 0, p = 0, o = 0; b < blocks; b++, p += size, o += QK) {
    const d = table[src[p]! | (src[p + 1]! << 8)]!;
    const m = withMin ? table[src[p + 2]! | (src[p + 3]! << 8)]! : -16 * d;
    const h = withMin ? p + 4 : p + 2;
    const qh = (src[h]! | (src[h + 1]! << 8) | (src[h + 2]! << 16) | (src[h + 3]! << 24)) >>> 0;
    const qs = h + 4;
    for (let j = 0; j < 16; j++) {
      const byte = src[qs + j]!;
      out[o + j] = d * ((byte & 0x0f) | (((qh >>> j) & 1) << 4)) + m;
      out[o + j + 16] = d * ((byte >>> 4) | (((qh >>> (j + 16)) & 1) << 4)) + m;
    }
  }
}

/**
 * The 6-bit (scale, min) pairs of a q4_K/q5_K super-block at `s`, multiplied by d and dmin. Sub-blocks 0..3 keep
 * their 6 bits in bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 take their low 4 bits from bytes 8..11 and
 * their top 2 bits from the spare top bits of bytes 0..7.
 */
export function unpackKScales(src: Uint8Array, s: number, d: number, dmin: number, scales: Float32Array, mins: Float32Array): void {
  for (let j = 0; j < 4; j++) {
    scales[j] = d * (src[s + j]! & 63);
    mins[j] = dmin * (src[s + j + 4]! & 63);
  }
  for (let j = 4; j < 8; j++) {
    scales[j] = d * ((src[s + j + 4]! & 0x0f) | ((src[s + j - 4]! >>> 6) << 4));
    mins[j] = dmin * ((src[s + j + 4]! >>> 4) | ((src[s + j]! >>> 6) << 4));
  }
}

/** q4_K, or with `fifthBit` q5_K: x = d * scale[j] * q - dmin * min[j]. */
function dequantK(src: Uint8Array, out: Float32Array, fifthBit: boolean): void {
  const table = halfToFloatTable();
  const blocks = out.length / QK_K;
  const size = fifthBit ? 176 : 144;
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  for (let b = 0, p = 0, o = 0; b < blocks; b++, p += size, o += QK_K) {
    const d = table[src[p]! | (src[p + 1]! << 8)]!;
    const dmin = table[src[p + 2]! | (src[p + 3]! << 8)]!;
    unpackKScales(src, p + 4, d, dmin, scales, mins);
    const qh = p + 16;
    const qs = fifthBit ? p + 48 : p + 16;
    for (let c = 0; c < 4; c++) {
      const d1 = scales[2 * c]!, m1 = mins[2 * c]!;
      const d2 = scales[2 * c + 1]!, m2 = mins[2 * c + 1]!;
      const q = qs + 32 * c;
      const y = o + 64 * c;
      for (let l = 0; l < 32; l++) {
        const byte = src[q + l]!;
        const high = fifthBit ? src[qh + l]! >>> (2 * c) : 0;
        out[y + l] = d1 * ((byte & 0x0f) | ((high & 1) << 4)) - m1;
        out[y + 32 + l] = d2 * ((byte >>> 4) | ((high & 2) << 3)) - m2;
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

/** Writes `value` as a half at out[p], out[p + 1]; returns the value the half holds. */
function putHalf(out: Uint8Array, p: number, value: number): number {
  const h = f32ToF16(value);
  out[p] = h & 0xff;
  out[p + 1] = h >>> 8;
  return f16ToF32(h);
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/**
 * Quantizes one block of 32 at `src[i..]` to 2^bits levels between its min and max (q4_1, q5_1): writes d and m
 * at out[p], returns the levels in `q`.
 */
function quantizeMinMax(src: Float32Array, i: number, levels: number, out: Uint8Array, p: number, q: Uint8Array): void {
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < QK; j++) {
    const v = src[i + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const d = putHalf(out, p, (max - min) / levels);
  const m = putHalf(out, p + 2, min);
  const id = d ? 1 / d : 0;
  for (let j = 0; j < QK; j++) q[j] = clamp(Math.round((src[i + j]! - m) * id), 0, levels);
}

/** Quantizes to Q4_1 (min and max of each block of 32 map to levels 0 and 15). */
export function quantizeQ4_1(src: Float32Array): Uint8Array {
  if (src.length % QK !== 0) throw new QuantShapeError(`Q4_1 needs a multiple of ${QK} elements, got ${src.length}`);
  const blocks = src.length / QK;
  const out = new Uint8Array(blocks * 20);
  const q = new Uint8Array(QK);
  for (let b = 0, i = 0, p = 0; b < blocks; b++, i += QK, p += 20) {
    quantizeMinMax(src, i, 15, out, p, q);
    for (let j = 0; j < 16; j++) out[p + 4 + j] = q[j]! | (q[j + 16]! << 4);
  }
  return out;
}

/** Packs 32 five-bit levels as qh (4 bytes) at out[h] followed by 16 nibble bytes. */
function packQ5(q: Uint8Array, out: Uint8Array, h: number): void {
  let qh = 0;
  for (let j = 0; j < QK; j++) qh |= ((q[j]! >>> 4) & 1) << j;
  out[h] = qh & 0xff;
  out[h + 1] = (qh >>> 8) & 0xff;
  out[h + 2] = (qh >>> 16) & 0xff;
  out[h + 3] = (qh >>> 24) & 0xff;
  for (let j = 0; j < 16; j++) out[h + 4 + j] = (q[j]! & 0x0f) | ((q[j + 16]! & 0x0f) << 4);
}

/** Quantizes to Q5_0 (as Q4_0: the value of largest magnitude maps to level 0, i.e. -16). */
export function quantizeQ5_0(src: Float32Array): Uint8Array {
  if (src.length % QK !== 0) throw new QuantShapeError(`Q5_0 needs a multiple of ${QK} elements, got ${src.length}`);
  const blocks = src.length / QK;
  const out = new Uint8Array(blocks * 22);
  const q = new Uint8Array(QK);
  for (let b = 0, i = 0, p = 0; b < blocks; b++, i += QK, p += 22) {
    let max = 0;
    for (let j = 0; j < QK; j++) if (Math.abs(src[i + j]!) > Math.abs(max)) max = src[i + j]!;
    const d = putHalf(out, p, max / -16);
    const id = d ? 1 / d : 0;
    for (let j = 0; j < QK; j++) q[j] = clamp(Math.round(src[i + j]! * id) + 16, 0, 31);
    packQ5(q, out, p + 2);
  }
  return out;
}

/** Quantizes to Q5_1 (min and max of each block of 32 map to levels 0 and 31). */
export function quantizeQ5_1(src: Float32Array): Uint8Array {
  if (src.length % QK !== 0) throw new QuantShapeError(`Q5_1 needs a multiple of ${QK} elements, got ${src.length}`);
  const blocks = src.length / QK;
  const out = new Uint8Array(blocks * 24);
  const q = new Uint8Array(QK);
  for (let b = 0, i = 0, p = 0; b < blocks; b++, i += QK, p += 24) {
    quantizeMinMax(src, i, 31, out, p, q);
    packQ5(q, out, p + 4);
  }
  return out;
}

/**
 * Quantizes to q4_K (`levels` 15) or q5_K (31): each sub-block of 32 gets a scale and a min (x ≈ scale * q - min,
 * min ≥ 0 as the format requires), both stored as 6-bit multiples of the super-block's d and dmin.
 */
function quantizeK(src: Float32Array, levels: 15 | 31): Uint8Array {
  const name = levels === 15 ? 'Q4_K' : 'Q5_K';
  if (src.length % QK_K !== 0) throw new QuantShapeError(`${name} needs a multiple of ${QK_K} elements, got ${src.length}`);
  const size = levels === 15 ? 144 : 176;
  const blocks = src.length / QK_K;
  const out = new Uint8Array(blocks * size);
  const rawScale = new Float32Array(8);
  const rawMin = new Float32Array(8);
  const sc = new Uint8Array(8);
  const mn = new Uint8Array(8);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  for (let b = 0, i = 0, p = 0; b < blocks; b++, i += QK_K, p += size) {
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let l = 0; l < 32; l++) {
        const v = src[i + 32 * j + l]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      rawMin[j] = Math.max(0, -lo);
      rawScale[j] = (hi + rawMin[j]!) / levels;
      maxScale = Math.max(maxScale, rawScale[j]!);
      maxMin = Math.max(maxMin, rawMin[j]!);
    }
    const d = putHalf(out, p, maxScale / 63);
    const dmin = putHalf(out, p + 2, maxMin / 63);
    for (let j = 0; j < 8; j++) {
      // Round the scale up so that the sub-block's max stays within `levels`; the min to nearest.
      sc[j] = d ? clamp(Math.ceil(rawScale[j]! / d - 1e-4), 0, 63) : 0;
      mn[j] = dmin ? clamp(Math.round(rawMin[j]! / dmin), 0, 63) : 0;
    }
    const s = p + 4;
    for (let j = 0; j < 4; j++) {
      out[s + j] = sc[j]! | ((sc[j + 4]! >>> 4) << 6);
      out[s + j + 4] = mn[j]! | ((mn[j + 4]! >>> 4) << 6);
      out[s + j + 8] = (sc[j + 4]! & 0x0f) | ((mn[j + 4]! & 0x0f) << 4);
    }
    unpackKScales(out, s, d, dmin, scales, mins);
    const qh = p + 16;
    const qs = levels === 15 ? p + 16 : p + 48;
    for (let c = 0; c < 4; c++) {
      for (let half = 0; half < 2; half++) {
        const j = 2 * c + half;
        const id = scales[j] ? 1 / scales[j]! : 0;
        for (let l = 0; l < 32; l++) {
          const q = clamp(Math.round((src[i + 32 * j + l]! + mins[j]!) * id), 0, levels);
          out[qs + 32 * c + l]! |= (q & 0x0f) << (4 * half);
          if (levels === 31) out[qh + l]! |= (q >>> 4) << j;
        }
      }
    }
  }
  return out;
}

/** Quantizes to Q4_K. `src.length` must be a multiple of 256. */
export function quantizeQ4_K(src: Float32Array): Uint8Array {
  return quantizeK(src, 15);
}

/** Quantizes to Q5_K. `src.length` must be a multiple of 256. */
export function quantizeQ5_K(src: Float32Array): Uint8Array {
  return quantizeK(src, 31);
}

/**
 * Quantizes to Q6_K: each sub-block of 16 gets a signed scale (its value of largest magnitude maps to -32), and
 * the scales are stored as int8 multiples of the super-block's d.
 */
export function quantizeQ6_K(src: Float32Array): Uint8Array {
  if (src.length % QK_K !== 0) throw new QuantShapeError(`Q6_K needs a multiple of ${QK_K} elements, got ${src.length}`);
  const blocks = src.length / QK_K;
  const out = new Uint8Array(blocks * 210);
  const raw = new Float32Array(16);
  const q = new Uint8Array(QK_K);
  for (let b = 0, i = 0, p = 0; b < blocks; b++, i += QK_K, p += 210) {
    let maxScale = 0;
    for (let s = 0; s < 16; s++) {
      let max = 0;
      for (let l = 0; l < 16; l++) if (Math.abs(src[i + 16 * s + l]!) > Math.abs(max)) max = src[i + 16 * s + l]!;
      raw[s] = max / -32;
      if (Math.abs(raw[s]!) > Math.abs(maxScale)) maxScale = raw[s]!;
    }
    const d = putHalf(out, p + 208, maxScale / -128);
    const id = d ? 1 / d : 0;
    for (let s = 0; s < 16; s++) {
      const sc = clamp(Math.round(raw[s]! * id), -128, 127);
      out[p + 192 + s] = sc & 0xff;
      const step = d * sc;
      const is = step ? 1 / step : 0;
      for (let l = 0; l < 16; l++) q[16 * s + l] = clamp(Math.round(src[i + 16 * s + l]! * is) + 32, 0, 63);
    }
    for (let h = 0; h < 2; h++) {
      const ql = p + 64 * h;
      const qh = p + 128 + 32 * h;
      const e = 128 * h;
      for (let l = 0; l < 32; l++) {
        const q1 = q[e + l]!, q2 = q[e + l + 32]!, q3 = q[e + l + 64]!, q4 = q[e + l + 96]!;
        out[ql + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
        out[ql + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
        out[qh + l] = (q1 >>> 4) | ((q2 >>> 4) << 2) | ((q3 >>> 4) << 4) | ((q4 >>> 4) << 6);
      }
    }
  }
  return out;
}

/** Encodes f32 values as `type`. */
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
    case 'q4_1':
      return quantizeQ4_1(src);
    case 'q5_0':
      return quantizeQ5_0(src);
    case 'q5_1':
      return quantizeQ5_1(src);
    case 'q4_k':
      return quantizeQ4_K(src);
    case 'q5_k':
      return quantizeQ5_K(src);
    case 'q6_k':
      return quantizeQ6_K(src);
  }
}
