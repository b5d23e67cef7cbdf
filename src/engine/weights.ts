/**
 * Turns stored weight tensors into operands for onnxruntime kernels, keeping quantized weights quantized.
 *
 * The kernel is com.microsoft.MatMulNBits at its default zero point (8 at 4 bits, 128 at 8 bits): onnxruntime 1.30's
 * CPU kernel runs 4 and 8 bits with int8 activations (accuracy_level 4) fast, but float zero points only through
 * an unpacked 4-bit path about 100× slower, and not at all at 8 bits. So every "d·q + m" form is split exactly into
 * (q − zp)·scale plus a per-block offset, and the offsets run as a small f32 MatMul over the activations' block sums:
 *   x·w = Σ_blocks scale_b · Σ (q − zp)·x  +  Σ_blocks offset_b · Σ_{i∈b} x_i.
 * Every GGUF type we load maps exactly (up to f32 rounding of the offsets) but q6_K, which alone is requantized:
 * - q8_0: 8-bit, block 32 (int8 + 128). q4_0: 4-bit, block 32, nibbles reordered.
 * - q4_1 (d·q + m) and q4_K (d·sc·q − dmin·m, sub-blocks of 32): 4-bit, block 32, offset m + 8·scale.
 * - q5_0, q5_1, q5_K: the 5-bit levels widen to 8 bits (level + 112), block 32; q5_1/q5_K add offsets.
 * - q6_K: 8-bit, block 32. Its 16-element blocks would map exactly onto block_size 16, but the kernel runs that
 *   1.2–1.7× slower than block 32 (bench/matmul-nbits.ts; padding each to 32 is slower still), so each pair of
 *   them is requantized into one 8-bit block: exact where their scales allow, else within half an 8-bit step.
 * - f32 stays f32; f16 and bf16 are widened to f32 because the CPU kernels have no fast half-precision GEMM on x86.
 * Weights that are fused (q|k|v, gate|up) but stored in different forms (a Q4_K_M file's Q6_K attn_v beside Q4_K
 * attn_q) stay separate operands of one 'stack', run side by side and concatenated.
 */
import { dequantize, f16ToF32, QK, QK_K, unpackKScales } from '../model/quant.js';
import type { WeightTensor } from '../model/types.js';

export interface NBitsWeight {
  readonly kind: 'nbits';
  /** Output features. */
  readonly n: number;
  /** Input features. */
  readonly k: number;
  readonly bits: 4 | 8;
  readonly blockSize: number;
  /** [n, k / blockSize, blockSize * bits / 8], at the kernel's default zero point 2^(bits−1). */
  readonly data: Uint8Array;
  /** [n * k / blockSize] */
  readonly scales: Float32Array;
  /** [n * k / blockSize]: added to every element of its block (w = (q − zp)·scale + offset), when present. */
  readonly offsets?: Float32Array;
}

export interface F32Weight {
  readonly kind: 'f32';
  readonly n: number;
  readonly k: number;
  /** Row-major [n, k], as stored; the graph reads it so (Gemm with transB), never a transposed copy. */
  readonly data: Float32Array;
}

/** Weights with the same input stacked along the output dimension, each kept in its own form. */
export interface StackedWeight {
  readonly kind: 'stack';
  readonly n: number;
  readonly k: number;
  readonly parts: readonly (NBitsWeight | F32Weight)[];
}

export type LinearWeight = NBitsWeight | F32Weight | StackedWeight;

function half(bytes: Uint8Array, offset: number): number {
  return f16ToF32(bytes[offset]! | (bytes[offset + 1]! << 8));
}

/** Stores 32 nibbles, element e at ggml's position (byte e % 16 of `src` at `o`, high nibble for e ≥ 16), in MatMulNBits' order (byte i: elements 2i low, 2i+1 high). */
function packQ4Block(src: Uint8Array, o: number, data: Uint8Array, dst: number): void {
  for (let i = 0; i < 16; i++) {
    const e0 = 2 * i;
    const e1 = e0 + 1;
    const q0 = e0 < 16 ? src[o + e0]! & 0x0f : src[o + e0 - 16]! >> 4;
    const q1 = e1 < 16 ? src[o + e1]! & 0x0f : src[o + e1 - 16]! >> 4;
    data[dst + i] = q0 | (q1 << 4);
  }
}

function fromQ8_0(n: number, k: number, src: Uint8Array): NBitsWeight {
  const blocks = (n * k) / QK;
  const data = new Uint8Array(n * k);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const o = b * 34;
    scales[b] = half(src, o);
    for (let i = 0; i < QK; i++) data[b * QK + i] = src[o + 2 + i]! ^ 0x80; // int8 → uint8 offset by 128
  }
  return { kind: 'nbits', n, k, bits: 8, blockSize: QK, data, scales };
}

/** q4_0 (x = d·(q − 8)) or, with `withMin`, q4_1 (x = d·q + m = d·(q − 8) + (m + 8d)). */
function fromQ4(n: number, k: number, src: Uint8Array, withMin: boolean): NBitsWeight {
  const blocks = (n * k) / QK;
  const size = withMin ? 20 : 18;
  const data = new Uint8Array(blocks * 16);
  const scales = new Float32Array(blocks);
  const offsets = withMin ? new Float32Array(blocks) : undefined;
  for (let b = 0; b < blocks; b++) {
    const o = b * size;
    const d = half(src, o);
    scales[b] = d;
    if (offsets) offsets[b] = half(src, o + 2) + 8 * d;
    packQ4Block(src, o + (withMin ? 4 : 2), data, b * 16);
  }
  return { kind: 'nbits', n, k, bits: 4, blockSize: QK, data, scales, ...(offsets ? { offsets } : {}) };
}

/** q5_0 (x = d·(q − 16)) or, with `withMin`, q5_1 (x = d·q + m): levels + 112 at 8 bits, so zero point 128 is q = 16. */
function fromQ5(n: number, k: number, src: Uint8Array, withMin: boolean): NBitsWeight {
  const blocks = (n * k) / QK;
  const size = withMin ? 24 : 22;
  const data = new Uint8Array(n * k);
  const scales = new Float32Array(blocks);
  const offsets = withMin ? new Float32Array(blocks) : undefined;
  for (let b = 0; b < blocks; b++) {
    const o = b * size;
    const d = half(src, o);
    scales[b] = d;
    if (offsets) offsets[b] = half(src, o + 2) + 16 * d;
    const h = o + (withMin ? 4 : 2);
    const qh = (src[h]! | (src[h + 1]! << 8) | (src[h + 2]! << 16) | (src[h + 3]! << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const byte = src[h + 4 + j]!;
      data[b * QK + j] = ((byte & 0x0f) | (((qh >>> j) & 1) << 4)) + 112;
      data[b * QK + j + 16] = ((byte >>> 4) | (((qh >>> (j + 16)) & 1) << 4)) + 112;
    }
  }
  return { kind: 'nbits', n, k, bits: 8, blockSize: QK, data, scales, ...(offsets ? { offsets } : {}) };
}

/**
 * q4_K (4-bit, x = s·q − m = s·(q − 8) + (8s − m)) or, with `fifthBit`, q5_K (levels + 112 at 8 bits,
 * offset 16s − m), blocks of 32 with s = d·sc and m = dmin·min per sub-block.
 */
function fromK(n: number, k: number, src: Uint8Array, fifthBit: boolean): NBitsWeight {
  const superBlocks = (n * k) / QK_K;
  const size = fifthBit ? 176 : 144;
  const data = new Uint8Array(fifthBit ? n * k : (n * k) / 2);
  const scales = new Float32Array((n * k) / QK);
  const offsets = new Float32Array(scales.length);
  const sc = new Float32Array(8);
  const mins = new Float32Array(8);
  const zero = fifthBit ? 16 : 8;
  for (let sb = 0; sb < superBlocks; sb++) {
    const o = sb * size;
    unpackKScales(src, o + 4, half(src, o), half(src, o + 2), sc, mins);
    for (let j = 0; j < 8; j++) {
      scales[sb * 8 + j] = sc[j]!;
      offsets[sb * 8 + j] = zero * sc[j]! - mins[j]!;
    }
    const qh = o + 16;
    const qs = fifthBit ? o + 48 : o + 16;
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const byte = src[qs + 32 * c + l]!;
        const lo = byte & 0x0f; // sub-block 2c, element l
        const hi = byte >>> 4; // sub-block 2c + 1, element l
        const element = sb * QK_K + 64 * c + l;
        if (fifthBit) {
          const bits = src[qh + l]! >>> (2 * c);
          data[element] = (lo | ((bits & 1) << 4)) + 112;
          data[element + 32] = (hi | ((bits & 2) << 3)) + 112;
        } else {
          // Byte i of a 4-bit block holds elements 2i (low) and 2i + 1 (high).
          data[element >> 1]! |= lo << ((element & 1) * 4);
          data[(element + 32) >> 1]! |= hi << (((element + 32) & 1) * 4);
        }
      }
    }
  }
  return { kind: 'nbits', n, k, bits: fifthBit ? 8 : 4, blockSize: QK, data, scales, offsets };
}

function gcd(a: number, b: number): number {
  while (b) {
    const r = a % b;
    a = b;
    b = r;
  }
  return a;
}

/**
 * q6_K (x = d·sc·(q − 32) over blocks of 16, sc an int8 per block) at 8 bits over blocks of 32 (level + 128, scale
 * d·c): each pair of 16-blocks becomes one block, its integer products t = sc·(q − 32) divided by c. Where the gcd of
 * the pair's scales divides them all into the int8 range (equal scales, say) that is exact; elsewhere c = max |t| / 127
 * and t / c is rounded, an error of at most half the new step: max |x| / 254 over the pair, about a quarter of q6_K's
 * own step where the pair's larger scale applies.
 */
function fromQ6_K(n: number, k: number, src: Uint8Array): NBitsWeight {
  const superBlocks = (n * k) / QK_K;
  const data = new Uint8Array(n * k);
  const scales = new Float32Array((n * k) / QK);
  const t = new Int32Array(QK_K); // sc·(q − 32) of one super-block, in element order
  const sc = new Int8Array(src.buffer, src.byteOffset, src.byteLength);
  for (let sb = 0; sb < superBlocks; sb++) {
    const o = sb * 210;
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h;
      const qh = o + 128 + 32 * h;
      const s = o + 192 + 8 * h; // int8 scales of this half's eight 16-blocks
      const base = 128 * h;
      for (let l = 0; l < 32; l++) {
        const hb = src[qh + l]!;
        const is = s + (l >> 4);
        t[base + l] = sc[is]! * (((src[ql + l]! & 0x0f) | ((hb & 3) << 4)) - 32);
        t[base + l + 32] = sc[is + 2]! * (((src[ql + l + 32]! & 0x0f) | (((hb >> 2) & 3) << 4)) - 32);
        t[base + l + 64] = sc[is + 4]! * (((src[ql + l]! >> 4) | (((hb >> 4) & 3) << 4)) - 32);
        t[base + l + 96] = sc[is + 6]! * (((src[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4)) - 32);
      }
    }
    const d = half(src, o + 208);
    for (let b = 0; b < QK_K / QK; b++) {
      let max = 0;
      for (let i = b * QK; i < (b + 1) * QK; i++) {
        const v = t[i]!;
        if (v > max) max = v;
        else if (-v > max) max = -v;
      }
      // Block b holds the super-block's 16-blocks 2b and 2b + 1, whose int8 scales are at o + 192 + 2b and the next.
      const divisor = gcd(Math.abs(sc[o + 192 + 2 * b]!), Math.abs(sc[o + 193 + 2 * b]!));
      const c = divisor > 0 && max / divisor <= 127 ? divisor : Math.max(max, 1) / 127;
      const inverse = 1 / c;
      const out = sb * QK_K + b * QK;
      scales[out / QK] = d * c;
      // t / c lies in [−127, 127]: + 128.5, truncated, is the rounded level + 128.
      for (let i = 0; i < QK; i++) data[out + i] = t[b * QK + i]! * inverse + 128.5;
    }
  }
  return { kind: 'nbits', n, k, bits: 8, blockSize: QK, data, scales };
}

export function toLinearWeight(t: WeightTensor): NBitsWeight | F32Weight {
  const [n, k] = t.shape as [number, number];
  switch (t.type) {
    case 'q8_0':
      return fromQ8_0(n, k, t.data);
    case 'q4_0':
      return fromQ4(n, k, t.data, false);
    case 'q4_1':
      return fromQ4(n, k, t.data, true);
    case 'q5_0':
      return fromQ5(n, k, t.data, false);
    case 'q5_1':
      return fromQ5(n, k, t.data, true);
    case 'q4_k':
      return fromK(n, k, t.data, false);
    case 'q5_k':
      return fromK(n, k, t.data, true);
    case 'q6_k':
      return fromQ6_K(n, k, t.data);
    case 'f32':
      // A view, not a copy: loaders hand out fresh, aligned buffers.
      return { kind: 'f32', n, k, data: t.data.byteOffset % 4 === 0 ? new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4) : new Float32Array(t.data.slice().buffer) };
    default:
      return { kind: 'f32', n, k, data: dequantize(t) };
  }
}

function sameForm(a: NBitsWeight | F32Weight, b: NBitsWeight | F32Weight): boolean {
  if (a.kind === 'f32' || b.kind === 'f32') return a.kind === b.kind;
  return a.bits === b.bits && a.blockSize === b.blockSize;
}

function concatArrays<T extends Uint8Array | Float32Array>(arrays: readonly T[], make: (length: number) => T): T {
  const out = make(arrays.reduce((sum, a) => sum + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a as never, o);
    o += a.length;
  }
  return out;
}

/**
 * Stacks weights with the same input size along the output dimension (fused QKV, gate+up): one operand when they
 * share a form, else a 'stack' of the parts as they are (never a requantization).
 */
export function concatLinear(parts: readonly LinearWeight[]): LinearWeight {
  const flat = parts.flatMap((p) => (p.kind === 'stack' ? p.parts : [p]));
  const first = flat[0]!;
  const k = first.k;
  if (flat.some((p) => p.k !== k)) throw new RangeError(`cannot stack weights with inputs of ${flat.map((p) => p.k).join(', ')}`);
  const n = flat.reduce((sum, p) => sum + p.n, 0);
  if (flat.length === 1) return first;
  if (!flat.every((p) => sameForm(p, first))) return { kind: 'stack', n, k, parts: flat };
  if (first.kind === 'f32') return { kind: 'f32', n, k, data: concatArrays(flat.map((p) => p.data as Float32Array), (l) => new Float32Array(l)) };
  const nb = flat as NBitsWeight[];
  const offsets = nb.some((p) => p.offsets)
    ? concatArrays(nb.map((p) => p.offsets ?? new Float32Array(p.scales.length)), (l) => new Float32Array(l))
    : undefined;
  return {
    kind: 'nbits',
    n,
    k,
    bits: first.bits,
    blockSize: first.blockSize,
    data: concatArrays(nb.map((p) => p.data), (l) => new Uint8Array(l)),
    scales: concatArrays(nb.map((p) => p.scales), (l) => new Float32Array(l)),
    ...(offsets ? { offsets } : {}),
  };
}

/** Dequantizes a linear weight back to row-major f32 [n, k] (the reference path of tests). */
export function linearToF32(w: LinearWeight): Float32Array {
  if (w.kind === 'f32') return w.data;
  if (w.kind === 'stack') return concatArrays(w.parts.map(linearToF32), (l) => new Float32Array(l));
  const out = new Float32Array(w.n * w.k);
  const blocks = (w.n * w.k) / w.blockSize;
  const blobBytes = (w.blockSize * w.bits) / 8;
  const zp = 1 << (w.bits - 1);
  for (let b = 0; b < blocks; b++) {
    const scale = w.scales[b]!;
    const offset = w.offsets ? w.offsets[b]! : 0;
    for (let i = 0; i < w.blockSize; i++) {
      const q = w.bits === 8 ? w.data[b * blobBytes + i]! : (w.data[b * blobBytes + (i >> 1)]! >> ((i & 1) * 4)) & 0x0f;
      out[b * w.blockSize + i] = (q - zp) * scale + offset;
    }
  }
  return out;
}

export function linearBytes(w: LinearWeight): number {
  if (w.kind === 'stack') return w.parts.reduce((sum, p) => sum + linearBytes(p), 0);
  return w.kind === 'f32' ? w.data.byteLength : w.data.byteLength + w.scales.byteLength + (w.offsets?.byteLength ?? 0);
}
