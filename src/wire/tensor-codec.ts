/**
 * Tensor codecs for hidden states on the wire. A tensor is a row-major Float32Array with a shape; on the wire it is
 * one of three encodings, all little-endian, with no header of their own (dtype and shape travel in the message
 * header):
 *
 * - `f32`: `n` IEEE-754 binary32 values, 4 bytes each. Lossless.
 * - `f16`: `n` IEEE-754 binary16 values, 2 bytes each. Round-to-nearest-even; finite values beyond ±65504 saturate to
 *   ±65504 (never ±Infinity), tiny values become f16 subnormals or signed zero, ±Infinity and NaN stay what they are.
 *   Relative error ≤ 2^-11 in the normal range. (The scalar f32BitsToF16Bits is plain IEEE: it overflows to ±Inf.)
 * - `int8`: blockwise symmetric quantisation along the last dimension. With `L = shape[last]`, `R = n / L` rows and
 *   `B = ceil(L / 64)` blocks per row (a row's last block may be shorter than 64; blocks never cross rows):
 *
 *       [scales: R·B × f32 LE, ordered row by row, block by block]
 *       [quants: n × int8, in the tensor's row-major order]
 *
 *   `scale = fround(absmax(block) / 127)`, `q = clamp(round(x / scale), -127, 127)` (all zero when scale is 0),
 *   and decoding gives `x' = q · scale`, so `|x − x'| ≤ scale / 2 ≤ absmax / 254` per block. Scales must lie in
 *   [0, MAX_INT8_SCALE] (so 127 · scale stays finite) and quants in −127..127 (the byte 0x80 is rejected), so a
 *   decoded value is always finite. NaN/±Infinity cannot be encoded (NonFiniteTensorError).
 *   Size: `4·R·B + n` bytes, about 1.06 bytes per value at L = 64·k.
 */
import {
  MalformedTensorError,
  NonFiniteTensorError,
  TensorTooLargeError,
  UnsupportedCodecError,
} from './errors.js';

export type WireDtype = 'f32' | 'f16' | 'int8';

export const WIRE_DTYPES: readonly WireDtype[] = Object.freeze(['f32', 'f16', 'int8'] as const);

/** Values per int8 quantisation block (along the last dimension). */
export const INT8_BLOCK_SIZE = 64;

/** Largest tensor rank accepted on the wire. */
export const MAX_TENSOR_RANK = 8;

/** Default cap on elements of one decoded tensor: 2^25 values (128 MiB as f32). */
export const DEFAULT_MAX_TENSOR_ELEMENTS = 1 << 25;

export interface TensorCodecOptions {
  /** Upper bound on the number of elements; larger shapes throw TensorTooLargeError. */
  readonly maxElements?: number;
}

/**
 * Largest int8 block scale: the greatest f32 `s` with `127 · s` ≤ the f32 maximum, so a decoded value is always
 * finite. Decoding rejects larger (and negative, NaN) scales.
 */
export const MAX_INT8_SCALE = largestScale();

function largestScale(): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = 3.4028234663852886e38 / 127;
  while (f32[0]! * 127 > 3.4028234663852886e38) u32[0]!--;
  return f32[0]!;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function isWireDtype(value: unknown): value is WireDtype {
  return value === 'f32' || value === 'f16' || value === 'int8';
}

function assertDtype(dtype: unknown): asserts dtype is WireDtype {
  if (!isWireDtype(dtype)) throw new UnsupportedCodecError(dtype);
}

/**
 * Validates a shape (an array of 1..8 non-negative safe integers whose product is at most `maxElements`) and
 * returns its element count. Throws MalformedTensorError or TensorTooLargeError.
 */
export function shapeElements(shape: readonly unknown[], maxElements: number = DEFAULT_MAX_TENSOR_ELEMENTS): number {
  if (!Array.isArray(shape)) throw new MalformedTensorError('shape is not an array');
  if (shape.length < 1 || shape.length > MAX_TENSOR_RANK) {
    throw new MalformedTensorError(`rank ${shape.length} is outside 1..${MAX_TENSOR_RANK}`);
  }
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new MalformedTensorError(`shape[${i}] = ${String(d)} is not a non-negative integer`);
    }
    n *= d;
    if (n > maxElements) {
      // Report the full product when it is representable; it is only for the message.
      let total = 1;
      for (const x of shape) total *= x as number;
      throw new TensorTooLargeError(total, maxElements);
    }
  }
  return n;
}

/** Bytes of the encoded payload for `shape` under `dtype` (shape assumed valid). */
export function encodedByteLength(dtype: WireDtype, shape: readonly number[]): number {
  assertDtype(dtype);
  const n = shapeElements(shape, Number.MAX_SAFE_INTEGER);
  switch (dtype) {
    case 'f32':
      return n * 4;
    case 'f16':
      return n * 2;
    case 'int8': {
      if (n === 0) return 0;
      const last = shape[shape.length - 1]!;
      const rows = n / last;
      return rows * Math.ceil(last / INT8_BLOCK_SIZE) * 4 + n;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// f16 scalar conversions (bit level, no tables)

/** Converts binary32 bits (as an unsigned 32-bit integer) to binary16 bits, rounding to nearest even. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Infinity, or NaN (keep the top payload bits, force a quiet non-zero mantissa).
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00; // overflow → ±Infinity
  if (e <= 0) {
    // f16 subnormal or zero: value = m · 2^-24, m = (1.mant · 2^23) >> (14 − e), rounded to nearest even.
    if (e < -10) return sign; // below half the smallest subnormal
    const full = mant | 0x800000;
    const shift = 14 - e; // 14..24
    const m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rem > half || (rem === half && (m & 1) !== 0) ? m + 1 : m);
  }
  const h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Infinity).
  return rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0) ? h + 1 : h;
}

/** Converts binary16 bits to binary32 bits (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal: normalise. value = mant · 2^-24.
    let e = 113; // exponent of 2^-14 in f32 bias, minus the shifts below
    let m = mant;
    while ((m & 0x400) === 0) {
      m <<= 1;
      e--;
    }
    return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Rounds a number to the nearest binary16 and returns its bits. */
export function toFloat16Bits(value: number): number {
  scratchF32[0] = value;
  return f32BitsToF16Bits(scratchU32[0]!);
}

/** The number held by binary16 bits. */
export function fromFloat16Bits(bits: number): number {
  scratchU32[0] = f16BitsToF32Bits(bits & 0xffff);
  return scratchF32[0]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

/**
 * Encodes `data` (row-major, `shape`) into `out` at `offset` and returns the number of bytes written. `out` must have
 * room for `encodedByteLength(dtype, shape)` bytes. Throws UnsupportedCodecError, MalformedTensorError (shape does
 * not match data), NonFiniteTensorError (int8 only).
 */
export function encodeTensorInto(
  data: Float32Array,
  shape: readonly number[],
  dtype: WireDtype,
  out: Uint8Array,
  offset = 0,
): number {
  assertDtype(dtype);
  const n = shapeElements(shape, Number.MAX_SAFE_INTEGER);
  if (n !== data.length) {
    throw new MalformedTensorError(`shape [${shape.join(', ')}] has ${n} elements but the data has ${data.length}`);
  }
  const bytes = encodedByteLength(dtype, shape);
  if (offset < 0 || offset + bytes > out.length) {
    throw new RangeError(`output buffer too small: need ${bytes} bytes at offset ${offset}, have ${out.length}`);
  }
  if (n === 0) return 0;
  switch (dtype) {
    case 'f32':
      encodeF32(data, out, offset);
      break;
    case 'f16':
      encodeF16(data, out, offset);
      break;
    case 'int8':
      encodeInt8(data, shape[shape.length - 1]!, out, offset);
      break;
  }
  return bytes;
}

/** Encodes a tensor into a fresh buffer. */
export function encodeTensor(data: Float32Array, shape: readonly number[], dtype: WireDtype): Uint8Array {
  assertDtype(dtype);
  const out = new Uint8Array(encodedByteLength(dtype, shape));
  encodeTensorInto(data, shape, dtype, out, 0);
  return out;
}

function encodeF32(data: Float32Array, out: Uint8Array, offset: number): void {
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + offset, data.length * 4);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i]!, true);
}

/** Bits of 65504, the largest finite f16. */
const F16_MAX_BITS = 0x7bff;

function encodeF16(data: Float32Array, out: Uint8Array, offset: number): void {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let o = offset;
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    let h = f32BitsToF16Bits(x);
    // Saturate: a finite value beyond the f16 range is sent as ±65504, never as an infinity the next hop would choke
    // on (and blame on whoever sent it).
    if ((h & 0x7fff) === 0x7c00 && (x & 0x7f800000) !== 0x7f800000) h = (h & 0x8000) | F16_MAX_BITS;
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    o += 2;
  }
}

function encodeInt8(data: Float32Array, last: number, out: Uint8Array, offset: number): void {
  const n = data.length;
  const rows = n / last;
  const blocksPerRow = Math.ceil(last / INT8_BLOCK_SIZE);
  const scaleBytes = rows * blocksPerRow * 4;
  const view = new DataView(out.buffer, out.byteOffset + offset, scaleBytes);
  const quantBase = offset + scaleBytes;
  let s = 0;
  for (let r = 0; r < rows; r++) {
    const rowStart = r * last;
    for (let b = 0; b < last; b += INT8_BLOCK_SIZE) {
      const start = rowStart + b;
      const end = start + Math.min(INT8_BLOCK_SIZE, last - b);
      let absmax = 0;
      for (let i = start; i < end; i++) {
        const a = Math.abs(data[i]!);
        if (!(a < Infinity)) throw new NonFiniteTensorError(i, data[i]!);
        if (a > absmax) absmax = a;
      }
      let scale = Math.fround(absmax / 127);
      if (scale > MAX_INT8_SCALE) scale = MAX_INT8_SCALE; // only for |x| within 2^-17 of the f32 maximum
      view.setFloat32(s, scale, true);
      s += 4;
      if (scale === 0) {
        out.fill(0, quantBase + start, quantBase + end);
        continue;
      }
      const inv = 1 / scale;
      for (let i = start; i < end; i++) {
        let q = Math.round(data[i]! * inv);
        if (q > 127) q = 127;
        else if (q < -127) q = -127;
        out[quantBase + i] = q & 0xff;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes `payload` (exactly the encoded bytes) into a fresh Float32Array of `shape`. Validates the dtype, the
 * shape (rank, integers, element cap) and that the payload length matches exactly; for int8 also the scales.
 * Throws UnsupportedCodecError, MalformedTensorError or TensorTooLargeError.
 */
export function decodeTensor(
  payload: Uint8Array,
  shape: readonly number[],
  dtype: WireDtype,
  options: TensorCodecOptions = {},
): Float32Array {
  assertDtype(dtype);
  const n = shapeElements(shape, options.maxElements ?? DEFAULT_MAX_TENSOR_ELEMENTS);
  const expected = encodedByteLength(dtype, shape);
  if (payload.length !== expected) {
    throw new MalformedTensorError(
      `${dtype} tensor of shape [${shape.join(', ')}] needs ${expected} payload bytes, got ${payload.length}`,
    );
  }
  const out = new Float32Array(n);
  if (n === 0) return out;
  switch (dtype) {
    case 'f32':
      decodeF32(payload, out);
      break;
    case 'f16':
      decodeF16(payload, out);
      break;
    case 'int8':
      decodeInt8(payload, shape[shape.length - 1]!, out);
      break;
  }
  return out;
}

function decodeF32(payload: Uint8Array, out: Float32Array): void {
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(payload);
    return;
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
}

function decodeF16(payload: Uint8Array, out: Float32Array): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  let o = 0;
  for (let i = 0; i < bits.length; i++) {
    bits[i] = f16BitsToF32Bits(payload[o]! | (payload[o + 1]! << 8));
    o += 2;
  }
}

function decodeInt8(payload: Uint8Array, last: number, out: Float32Array): void {
  const n = out.length;
  const rows = n / last;
  const blocksPerRow = Math.ceil(last / INT8_BLOCK_SIZE);
  const scaleBytes = rows * blocksPerRow * 4;
  const view = new DataView(payload.buffer, payload.byteOffset, scaleBytes);
  let s = 0;
  for (let r = 0; r < rows; r++) {
    const rowStart = r * last;
    for (let b = 0; b < last; b += INT8_BLOCK_SIZE) {
      const scale = view.getFloat32(s, true);
      if (!(scale >= 0 && scale <= MAX_INT8_SCALE)) {
        throw new MalformedTensorError(`int8 block ${s / 4} has invalid scale ${scale}`);
      }
      s += 4;
      const start = rowStart + b;
      const end = start + Math.min(INT8_BLOCK_SIZE, last - b);
      for (let i = start; i < end; i++) {
        const byte = payload[scaleBytes + i]!;
        if (byte === 0x80) throw new MalformedTensorError(`int8 quant at element ${i} is -128 (allowed: -127..127)`);
        out[i] = ((byte << 24) >> 24) * scale;
      }
    }
  }
}
