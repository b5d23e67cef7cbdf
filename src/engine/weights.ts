/**
 * Turns stored weight tensors into operands for onnxruntime kernels, keeping quantized weights quantized:
 * - q8_0 and q4_0 map exactly onto com.microsoft.MatMulNBits (block 32): q8_0's int8 becomes uint8 with zero point
 *   128, q4_0's nibbles are reordered into MatMulNBits' packing with its default zero point 8.
 * - q6_K maps exactly onto 8-bit MatMulNBits with blocks of 16 (zero point 32, scale d·sc).
 * - q4_K is requantized to q8_0 (the only lossy path, error < 0.5% of each block's range; stays quantized).
 * - f32 stays f32; f16 and bf16 are widened to f32 because the CPU kernels have no fast half-precision GEMM on x86.
 */
import { dequantize, f16ToF32, QK_K } from '../model/quant.js';
import type { WeightTensor } from '../model/types.js';

export type LinearWeight =
  | {
      readonly kind: 'nbits';
      /** Output features. */
      readonly n: number;
      /** Input features. */
      readonly k: number;
      readonly bits: 4 | 8;
      readonly blockSize: number;
      /** [n, k / blockSize, blockSize * bits / 8] */
      readonly data: Uint8Array;
      /** [n * k / blockSize] */
      readonly scales: Float32Array;
      /** Explicit zero points, one byte per block (8-bit) or undefined for the kernel default. */
      readonly zeroPoints?: Uint8Array;
    }
  | {
      readonly kind: 'f32';
      readonly n: number;
      readonly k: number;
      /** Row-major [n, k], as stored. The graph builder transposes when it needs [k, n]. */
      readonly data: Float32Array;
    };

function halfScale(bytes: Uint8Array, offset: number): number {
  return f16ToF32(bytes[offset]! | (bytes[offset + 1]! << 8));
}

function fromQ8_0(n: number, k: number, src: Uint8Array): LinearWeight {
  const blocks = (n * k) / 32;
  const data = new Uint8Array(blocks * 32);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const o = b * 34;
    scales[b] = halfScale(src, o);
    for (let i = 0; i < 32; i++) data[b * 32 + i] = src[o + 2 + i]! ^ 0x80; // int8 → uint8 offset by 128
  }
  return { kind: 'nbits', n, k, bits: 8, blockSize: 32, data, scales, zeroPoints: new Uint8Array(blocks).fill(128) };
}

function fromQ4_0(n: number, k: number, src: Uint8Array): LinearWeight {
  const blocks = (n * k) / 32;
  const data = new Uint8Array(blocks * 16);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const o = b * 18;
    scales[b] = halfScale(src, o);
    // ggml: byte j holds element j (low) and j+16 (high). MatMulNBits: byte i holds elements 2i (low), 2i+1 (high).
    for (let i = 0; i < 16; i++) {
      const e0 = 2 * i;
      const e1 = 2 * i + 1;
      const q0 = e0 < 16 ? src[o + 2 + e0]! & 0x0f : src[o + 2 + e0 - 16]! >> 4;
      const q1 = e1 < 16 ? src[o + 2 + e1]! & 0x0f : src[o + 2 + e1 - 16]! >> 4;
      data[b * 16 + i] = q0 | (q1 << 4);
    }
  }
  return { kind: 'nbits', n, k, bits: 4, blockSize: 32, data, scales };
}

function fromQ6_K(n: number, k: number, src: Uint8Array): LinearWeight {
  const superBlocks = (n * k) / QK_K;
  const data = new Uint8Array(n * k);
  const scales = new Float32Array((n * k) / 16);
  for (let sb = 0; sb < superBlocks; sb++) {
    const o = sb * 210;
    const d = halfScale(src, o + 208);
    const out = sb * QK_K;
    for (let half = 0; half < 2; half++) {
      const ql = o + 64 * half;
      const qh = o + 128 + 32 * half;
      const sc = o + 192 + 8 * half;
      const base = out + 128 * half;
      for (let l = 0; l < 32; l++) {
        const h = src[qh + l]!;
        data[base + l] = (src[ql + l]! & 0x0f) | ((h & 3) << 4);
        data[base + l + 32] = (src[ql + l + 32]! & 0x0f) | (((h >> 2) & 3) << 4);
        data[base + l + 64] = (src[ql + l]! >> 4) | (((h >> 4) & 3) << 4);
        data[base + l + 96] = (src[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4);
      }
      for (let j = 0; j < 8; j++) {
        const scale = (src[sc + j]! << 24) >> 24; // int8
        scales[(base >> 4) + j] = d * scale;
      }
    }
  }
  return { kind: 'nbits', n, k, bits: 8, blockSize: 16, data, scales, zeroPoints: new Uint8Array(scales.length).fill(32) };
}

/** Requantizes f32 rows to 8-bit blocks of 32 (symmetric, as q8_0). */
function requantize8(n: number, k: number, values: Float32Array): LinearWeight {
  const blocks = (n * k) / 32;
  const data = new Uint8Array(n * k);
  const scales = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]!));
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    scales[b] = d;
    for (let i = 0; i < 32; i++) data[b * 32 + i] = Math.round(values[b * 32 + i]! * id) + 128;
  }
  return { kind: 'nbits', n, k, bits: 8, blockSize: 32, data, scales, zeroPoints: new Uint8Array(blocks).fill(128) };
}

export function toLinearWeight(t: WeightTensor): LinearWeight {
  const [n, k] = t.shape as [number, number];
  switch (t.type) {
    case 'q8_0':
      return fromQ8_0(n, k, t.data);
    case 'q4_0':
      return fromQ4_0(n, k, t.data);
    case 'q6_k':
      return fromQ6_K(n, k, t.data);
    case 'q4_k':
      return requantize8(n, k, dequantize(t));
    case 'f32':
      // A view, not a copy: loaders hand out fresh, aligned buffers.
      return { kind: 'f32', n, k, data: t.data.byteOffset % 4 === 0 ? new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4) : new Float32Array(t.data.slice().buffer) };
    default:
      return { kind: 'f32', n, k, data: dequantize(t) };
  }
}

/** Stacks weights with the same input size and layout along the output dimension (fused QKV, gate+up). */
export function concatLinear(parts: readonly LinearWeight[]): LinearWeight {
  const first = parts[0]!;
  const k = first.k;
  const n = parts.reduce((sum, p) => sum + p.n, 0);
  const same = parts.every((p) => p.kind === first.kind && p.k === k && (p.kind !== 'nbits' || (first.kind === 'nbits' && p.bits === first.bits && p.blockSize === first.blockSize)));
  if (!same) {
    // Mixed storage (a q4 model with a q6 tensor, say): fall back to the widest common form, 8-bit blocks.
    return concatLinear(parts.map((p) => (p.kind === 'nbits' && p.bits === 8 && p.blockSize === 32 ? p : requantize8(p.n, p.k, linearToF32(p)))));
  }
  if (first.kind === 'f32') {
    const data = new Float32Array(n * k);
    let offset = 0;
    for (const p of parts) {
      data.set(p.data as Float32Array, offset);
      offset += p.n * k;
    }
    return { kind: 'f32', n, k, data };
  }
  const cat = <T extends Uint8Array | Float32Array>(arrays: T[], make: (len: number) => T): T => {
    const out = make(arrays.reduce((s, a) => s + a.length, 0));
    let o = 0;
    for (const a of arrays) {
      out.set(a as never, o);
      o += a.length;
    }
    return out;
  };
  const nb = parts as Extract<LinearWeight, { kind: 'nbits' }>[];
  const zeroPoints = nb.every((p) => p.zeroPoints) ? cat(nb.map((p) => p.zeroPoints!), (l) => new Uint8Array(l)) : undefined;
  return {
    kind: 'nbits',
    n,
    k,
    bits: nb[0]!.bits,
    blockSize: nb[0]!.blockSize,
    data: cat(nb.map((p) => p.data), (l) => new Uint8Array(l)),
    scales: cat(nb.map((p) => p.scales), (l) => new Float32Array(l)),
    zeroPoints,
  };
}

/** Dequantizes a linear weight back to row-major f32 [n, k] (for mixed-type fallbacks and the reference path). */
export function linearToF32(w: LinearWeight): Float32Array {
  if (w.kind === 'f32') return w.data;
  const out = new Float32Array(w.n * w.k);
  const blocks = (w.n * w.k) / w.blockSize;
  const blobBytes = (w.blockSize * w.bits) / 8;
  for (let b = 0; b < blocks; b++) {
    const scale = w.scales[b]!;
    const zp = w.zeroPoints ? w.zeroPoints[b]! : 1 << (w.bits - 1);
    for (let i = 0; i < w.blockSize; i++) {
      const q = w.bits === 8 ? w.data[b * blobBytes + i]! : (w.data[b * blobBytes + (i >> 1)]! >> ((i & 1) * 4)) & 0x0f;
      out[b * w.blockSize + i] = (q - zp) * scale;
    }
  }
  return out;
}

export function linearBytes(w: LinearWeight): number {
  return w.kind === 'f32' ? w.data.byteLength : w.data.byteLength + w.scales.byteLength + (w.zeroPoints?.byteLength ?? 0);
}
