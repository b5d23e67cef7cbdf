/**
 * Builds one ONNX graph for a span of Llama blocks. The design follows the costs measured on onnxruntime-node
 * (≈30 µs per run, ≈3.5 µs per fed input, ≈1 µs per node) and keeps the KV cache from ever being copied per token:
 *
 * - One graph per span, so a decode step is one `session.run`.
 * - Each session keeps, per layer, a K and a V buffer, time-major ([capacity, kvDim]). The first P rows are a
 *   contiguous prefix, fed zero-copy (with a sliding window, only the window's rows: still contiguous). The graph
 *   returns only the new rows; the host writes them in place.
 * - Decode attention reads the cache once, in the layout it is stored: queries are spread block-diagonally over KV
 *   heads (Qbd: [kvDim, heads], zero outside each head's own columns), so scores are one MatMul of the K prefix by
 *   Qbd, and the output one MatMul of the probabilities by the V prefix, from which each head keeps its own block.
 * - Prefill (more than one token, one session) takes a head-major branch, where the extra work of Qbd would grow
 *   with the prompt; it may copy the cache once, which the prompt's length amortizes.
 * - Batched decode has its own graph of a fixed number of slots (one token each), fed in full and padded with
 *   empty sessions: onnxruntime-node must be fed every declared input, so optional slots would tax every single
 *   step. The single-session graph thus carries no batching cost at all; the price is a second copy of the packed
 *   weights on servers that batch.
 */
import type { ModelConfig } from '../model/types.js';
import { DataType, GraphBuilder } from './onnx/graph.js';
import type { LinearWeight } from './weights.js';

export interface LayerWeights {
  attnNorm: Float32Array;
  qkv: LinearWeight;
  qkvBias?: Float32Array;
  output: LinearWeight;
  ffnNorm: Float32Array;
  gateUp: LinearWeight;
  down: LinearWeight;
}

export interface SpanGraphSpec {
  config: ModelConfig;
  layers: LayerWeights[];
  /** 'single': one session, prefill or decode. 'batch': exactly `batch` single-token decode steps. */
  mode: 'single' | 'batch';
  /** Slots of a 'batch' graph (required there). */
  batch?: number;
  /** Prefix for weight names, unique per span. */
  name: string;
  /** MatMulNBits accuracy level: 4 quantizes activations to int8, 0 keeps them f32. */
  accuracyLevel?: number;
}

/** Input and output names, shared with the executor. */
export const SpanIO = {
  hidden: 'hidden',
  cos: 'cos',
  sin: 'sin',
  /** Additive causal mask for prefill: [tokens·group, past + tokens]. */
  mask: 'mask',
  /** bool [1]: true for a prefill step (single mode). */
  prefill: 'prefill',
  k: (layer: number, slot: number) => `k_${layer}_${slot}`,
  v: (layer: number, slot: number) => `v_${layer}_${slot}`,
  /** int64 [2]: [past tokens, 1] of a decode slot. */
  split: (slot: number) => `split_${slot}`,
  out: 'out',
  newKv: 'new_kv',
} as const;

function f32bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Emits x·Wᵀ for a stored [n, k] weight. */
export function linear(g: GraphBuilder, x: string, w: LinearWeight, name: string, accuracyLevel = 4): string {
  if (w.kind === 'stack') return g.op('Concat', w.parts.map((p, i) => linear(g, x, p, `${name}.${i}`, accuracyLevel)), { axis: -1 });
  if (w.kind === 'nbits') {
    const blocks = w.k / w.blockSize;
    const b = g.weight(`${name}.q`, DataType.UINT8, [w.n, blocks, (w.blockSize * w.bits) / 8], w.data);
    const s = g.weight(`${name}.s`, DataType.FLOAT, [w.n * blocks], f32bytes(w.scales));
    const y = g.node('MatMulNBits', [x, b, s], {
      domain: 'com.microsoft',
      attrs: { K: w.k, N: w.n, bits: w.bits, block_size: w.blockSize, accuracy_level: accuracyLevel },
      hint: name,
    })[0]!;
    if (!w.offsets) return y;
    // Block offsets: each block's sum of x times its offset, an f32 [rows, blocks] · [blocks, n] product, added to
    // the kernel's [1, rows, n] (or [rows, n]) output.
    const sums = g.op('ReduceSum', [g.op('Reshape', [x, g.int64([-1, blocks, w.blockSize])]), g.int64([-1])], { keepdims: 0 });
    const t = new Float32Array(w.n * blocks);
    for (let r = 0; r < w.n; r++) for (let c = 0; c < blocks; c++) t[c * w.n + r] = w.offsets[r * blocks + c]!;
    const offsets = g.weight(`${name}.m`, DataType.FLOAT, [blocks, w.n], f32bytes(t));
    return g.op('Add', [y, g.op('MatMul', [sums, offsets])], undefined, name);
  }
  // MatMul wants [k, n]; transpose once at load.
  const t = new Float32Array(w.n * w.k);
  for (let r = 0; r < w.n; r++) for (let c = 0; c < w.k; c++) t[c * w.n + r] = w.data[r * w.k + c]!;
  const wt = g.weight(`${name}.w`, DataType.FLOAT, [w.k, w.n], f32bytes(t));
  return g.op('MatMul', [x, wt], undefined, name);
}


function batchSlots(spec: SpanGraphSpec): number {
  if (!Number.isInteger(spec.batch) || spec.batch! < 2) throw new RangeError(`a batch graph needs batch ≥ 2 slots, got ${spec.batch}`);
  return spec.batch!;
}

export function buildSpanGraph(spec: SpanGraphSpec): GraphBuilder {
  const { config: c, layers, name } = spec;
  const level = spec.accuracyLevel ?? 4;
  const slotCount = spec.mode === 'batch' ? batchSlots(spec) : 1;
  const H = c.hiddenSize;
  const nh = c.numHeads;
  const kvh = c.numKvHeads;
  const hd = c.headDim;
  const group = nh / kvh;
  const qDim = nh * hd;
  const kvDim = kvh * hd;
  const scale = 1 / Math.sqrt(hd);
  const g = new GraphBuilder(name);

  const hidden = g.input(SpanIO.hidden, DataType.FLOAT, [1, 'N', H]);
  const cos = g.input(SpanIO.cos, DataType.FLOAT, ['N', hd / 2]);
  const sin = g.input(SpanIO.sin, DataType.FLOAT, ['N', hd / 2]);
  const single = spec.mode === 'single';
  const mask = single ? g.input(SpanIO.mask, DataType.FLOAT, ['M', 'S']) : '';
  const prefill = single ? g.input(SpanIO.prefill, DataType.BOOL, [1]) : '';
  const splits = Array.from({ length: slotCount }, (_, s) => g.input(SpanIO.split(s), DataType.INT64, [2]));
  const cacheInputs = layers.map((_, l) =>
    Array.from({ length: slotCount }, (_, s) => ({
      k: g.input(SpanIO.k(l, s), DataType.FLOAT, [`P${s}`, kvDim]),
      v: g.input(SpanIO.v(l, s), DataType.FLOAT, [`P${s}`, kvDim]),
    })),
  );

  // E[h, 1, 1, h', 1] = scale·δ(h, h'): spreads each query head over its own KV head's rows of Qbd.
  const eq = new Float32Array(kvh * kvh);
  for (let h = 0; h < kvh; h++) eq[h * kvh + h] = scale;
  const spread = g.float(eq, [kvh, 1, 1, kvh, 1]);
  // Picks each head's own block from [rows, heads', kvHeads, headDim] outputs.
  const pick = g.float(eq.map((x) => (x ? 1 : 0)), [1, kvh, 1, kvh, 1]);
  const zeroPos = g.int64([0]);
  const axis0 = g.int64([0]);
  const axis1 = g.int64([1]);
  const scaleConst = g.float([scale]);

  /** Decode attention of slot s (one token, row s of q/k/v) against its cache prefix. Returns [heads, kvDim]. */
  const decodeSlot = (b: GraphBuilder, l: number, s: number, qbd: string, k2: string, v2: string): string => {
    const { k: pastK, v: pastV } = cacheInputs[l]![s]!;
    const q = b.op('Slice', [qbd, g.int64([s * nh]), g.int64([(s + 1) * nh]), axis1]);
    const kNew = b.op('Slice', [k2, g.int64([s]), g.int64([s + 1]), axis0]);
    const vNew = b.op('Slice', [v2, g.int64([s]), g.int64([s + 1]), axis0]);
    const scores = b.op('Concat', [b.op('MatMul', [pastK, q]), b.op('MatMul', [kNew, q])], { axis: 0 });
    const probs = b.op('Softmax', [b.op('Transpose', [scores], { perm: [1, 0] })], { axis: -1 });
    const [pPast, pNew] = b.node('Split', [probs, splits[s]!], { attrs: { axis: 1 }, outputs: 2 });
    return b.op('Add', [b.op('MatMul', [pPast!, pastV]), b.op('Mul', [pNew!, vNew])]);
  };

  /** Decode attention of every slot, one token each. Returns [1, slots, qDim]. */
  const decodeAttention = (b: GraphBuilder, l: number, q: string, k2: string, v2: string) => {
    // Qbd[h·hd + d, r·heads + h'·group + j] = scale·q[r, h', j, d]·δ(h, h')
    const qt = b.op('Transpose', [b.op('Reshape', [q, g.int64([-1, kvh, group, hd])])], { perm: [3, 0, 1, 2] });
    const qbd = b.op('Reshape', [b.op('Mul', [qt, spread]), g.int64([kvDim, -1])]);
    const slotsOut = Array.from({ length: slotCount }, (_, s) => decodeSlot(b, l, s, qbd, k2, v2));
    const out = slotCount === 1 ? slotsOut[0]! : b.op('Concat', slotsOut, { axis: 0 });
    const picked = b.op('Mul', [b.op('Reshape', [out, g.int64([-1, kvh, group, kvh, hd])]), pick]);
    const heads = b.op('ReduceSum', [picked, g.int64([3])], { keepdims: 0 });
    return b.op('Reshape', [heads, g.int64([1, -1, qDim])]);
  };

  const prefillBranch = (l: number, q: string, k2: string, v2: string) => {
    const b = g.child(`prefill_${l}`);
    const { k: pastK, v: pastV } = cacheInputs[l]![0]!;
    const allK = b.op('Reshape', [b.op('Concat', [pastK, k2], { axis: 0 }), g.int64([-1, kvh, hd])]);
    const allV = b.op('Reshape', [b.op('Concat', [pastV, v2], { axis: 0 }), g.int64([-1, kvh, hd])]);
    const kh = b.op('Transpose', [allK], { perm: [1, 2, 0] }); // [kvh, hd, P+T]
    const vh = b.op('Transpose', [allV], { perm: [1, 0, 2] }); // [kvh, P+T, hd]
    const qh = b.op('Reshape', [b.op('Transpose', [b.op('Reshape', [q, g.int64([-1, kvh, group, hd])])], { perm: [1, 0, 2, 3] }), g.int64([kvh, -1, hd])]);
    const scores = b.op('Add', [b.op('Mul', [b.op('MatMul', [qh, kh]), scaleConst]), mask]); // [kvh, T·group, P+T]
    const out = b.op('MatMul', [b.op('Softmax', [scores], { axis: -1 }), vh]); // [kvh, T·group, hd]
    const rows = b.op('Transpose', [b.op('Reshape', [out, g.int64([kvh, -1, group, hd])])], { perm: [1, 0, 2, 3] });
    b.output(b.op('Reshape', [rows, g.int64([1, -1, qDim])]), DataType.FLOAT, [1, 'N', qDim]);
    return b.toGraph();
  };

  let residual = hidden;
  let pending: string | undefined; // the previous layer's FFN output, not yet added to the residual
  const newKvs: string[] = [];
  layers.forEach((w, l) => {
    const p = `${name}.${l}`;
    // The first layer of a span adds a zero skip, so it runs the very kernel a mid-model layer runs on the same
    // sum: a model split across servers then gives bit-identical results to the whole model.
    const skip = pending ?? g.op('Mul', [residual, g.float([0])]);
    const norm1 = g.node('SkipSimplifiedLayerNormalization', [skip, residual, g.float(w.attnNorm)], {
      domain: 'com.microsoft',
      attrs: { epsilon: { float: c.rmsNormEps } },
      outputs: [g.fresh('normed'), '', '', g.fresh('resid')],
    });
    const normed = norm1[0]!;
    residual = norm1[3]!;
    let qkv = linear(g, normed, w.qkv, `${p}.qkv`, level);
    if (w.qkvBias) qkv = g.op('Add', [qkv, g.float(w.qkvBias)]);
    const [qk, v] = g.node('Split', [qkv, g.int64([qDim + kvDim, kvDim])], { attrs: { axis: -1 }, outputs: 2 });
    const qkRot = g.ms('RotaryEmbedding', [qk!, zeroPos, cos, sin], { interleaved: c.ropeInterleaved ? 1 : 0, num_heads: nh + kvh });
    const [q, k] = g.node('Split', [qkRot, g.int64([qDim, kvDim])], { attrs: { axis: -1 }, outputs: 2 });
    const k2 = g.op('Reshape', [k!, g.int64([-1, kvDim])]);
    const v2 = g.op('Reshape', [v!, g.int64([-1, kvDim])]);
    newKvs.push(k2, v2);

    let attn: string;
    if (single) {
      const decode = g.child(`decode_${l}`);
      decode.output(decodeAttention(decode, l, q!, k2, v2), DataType.FLOAT, [1, 'N', qDim]);
      attn = g.op('If', [prefill], { then_branch: { graph: prefillBranch(l, q!, k2, v2) }, else_branch: { graph: decode.toGraph() } });
    } else {
      attn = decodeAttention(g, l, q!, k2, v2);
    }
    const attnOut = linear(g, attn, w.output, `${p}.o`, level);

    const outs = g.node('SkipSimplifiedLayerNormalization', [attnOut, residual, g.float(w.ffnNorm)], {
      domain: 'com.microsoft',
      attrs: { epsilon: { float: c.rmsNormEps } },
      outputs: [g.fresh('normed'), '', '', g.fresh('resid')],
    });
    residual = outs[3]!;
    const gu = linear(g, outs[0]!, w.gateUp, `${p}.gu`, level);
    const [gate, up] = g.node('Split', [gu, g.int64([c.intermediateSize, c.intermediateSize])], { attrs: { axis: -1 }, outputs: 2 });
    const act = g.op('Mul', [g.op('Mul', [gate!, g.op('Sigmoid', [gate!])]), up!]);
    pending = linear(g, act, w.down, `${p}.down`, level);
  });

  g.node('Add', [pending!, residual], { outputs: [SpanIO.out] });
  g.output(SpanIO.out, DataType.FLOAT, [1, 'N', H]);
  // New rows of every layer side by side: [tokens, layers · (k | v)].
  g.node('Concat', newKvs, { attrs: { axis: 1 }, outputs: [SpanIO.newKv] });
  g.output(SpanIO.newKv, DataType.FLOAT, ['N', layers.length * 2 * kvDim]);
  return g;
}
