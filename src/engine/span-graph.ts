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
 * - Batched decode has its own graph of a fixed number of slots (one token each). onnxruntime-node must be fed
 *   every declared input, so the slots past the sessions of a call are fed empty (no row, no cache, no columns of
 *   Qbd): the matmuls run on the call's rows only, and an empty slot costs its feeds and a few zero-size nodes
 *   (about 8 µs per layer). That is also why the single-session graph stays apart: fed through the batch graph, a
 *   lone decode step pays 7 empty slots, +9–22% on 6 SmolLM2-135M layers. The price is a second copy of the
 *   packed weights on servers that batch (onnxruntime-node cannot share prepacked weights between sessions, and
 *   without prepacking MatMulNBits ran 24–110× slower here).
 * - A decode slot's attention is 6 nodes: scores of the cached rows (one MatMul by its Qbd block), the new row's
 *   score (computed for all slots at once) appended, softmax, and the probabilities split between the cached V rows
 *   (one MatMul) and the new V row (all slots at once).
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
  /** int64 [2]: [past tokens, 1] of a decode slot ([0, 1] for an empty one). */
  split: (slot: number) => `split_${slot}`,
  /** int64 [slots] of a batch graph: heads per slot, 0 for the empty slots past the rows fed. */
  slotColumns: 'slot_columns',
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
  const slotColumns = slotCount > 1 ? g.input(SpanIO.slotColumns, DataType.INT64, [slotCount]) : '';
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
  const scaleConst = g.float([scale]);

  /**
   * Decode attention of slot s against its cache prefix: q_s [kvDim, heads] (its Qbd block), its new token's score
   * [heads, 1]. The new token's V row is left out here (all slots' at once, below), so the cache is never
   * concatenated with anything. Returns the past rows' part of the output [heads, kvDim] and the new row's
   * probabilities [heads, 1].
   */
  const decodeSlot = (b: GraphBuilder, l: number, s: number, q: string, newScore: string): [string, string] => {
    const { k: pastK, v: pastV } = cacheInputs[l]![s]!;
    const scores = b.op('Concat', [b.op('Transpose', [b.op('MatMul', [pastK, q])], { perm: [1, 0] }), newScore], { axis: 1 }); // [heads, P + 1]
    const [pPast, pNew] = b.node('Split', [b.op('Softmax', [scores], { axis: -1 }), splits[s]!], { attrs: { axis: 1 }, outputs: 2 });
    return [b.op('MatMul', [pPast!, pastV]), pNew!];
  };

  /**
   * Decode attention of every slot, one token each; a batch graph's slots past the rows fed are empty (no columns,
   * no cache), so a call costs what its sessions need, not the graph's slot count. Returns [1, rows, qDim].
   */
  const decodeAttention = (b: GraphBuilder, l: number, q: string, k2: string, v2: string) => {
    // Qbd[h·hd + d, r·heads + h'·group + j] = scale·q[r, h', j, d]·δ(h, h')
    const qt = b.op('Transpose', [b.op('Reshape', [q, g.int64([-1, kvh, group, hd])])], { perm: [3, 0, 1, 2] });
    const qbd = b.op('Reshape', [b.op('Mul', [qt, spread]), g.int64([kvDim, -1])]);
    // Every row's score against its own new key, per head: scale·Σ_d q·k, summed the same way for any row count.
    const qk = b.op('Mul', [b.op('Reshape', [q, g.int64([-1, kvh, group, hd])]), b.op('Reshape', [k2, g.int64([-1, kvh, 1, hd])])]);
    const own = b.op('Reshape', [b.op('Mul', [b.op('ReduceSum', [qk, g.int64([3])], { keepdims: 0 }), scaleConst]), g.int64([-1, 1])]); // [rows·heads, 1]
    const parts = slotCount === 1 ? [[qbd], [own]] : [b.node('Split', [qbd, slotColumns], { attrs: { axis: 1 }, outputs: slotCount }), b.node('Split', [own, slotColumns], { attrs: { axis: 0 }, outputs: slotCount })];
    const slots = Array.from({ length: slotCount }, (_, s) => decodeSlot(b, l, s, parts[0]![s]!, parts[1]![s]!));
    const past = slotCount === 1 ? slots[0]![0] : b.op('Concat', slots.map((x) => x[0]), { axis: 0 }); // [rows·heads, kvDim]
    const pNew = slotCount === 1 ? slots[0]![1] : b.op('Concat', slots.map((x) => x[1]), { axis: 0 }); // [rows·heads, 1]
    const fresh = b.op('Mul', [b.op('Reshape', [pNew, g.int64([-1, nh, 1])]), b.op('Reshape', [v2, g.int64([-1, 1, kvDim])])]);
    const out = b.op('Add', [b.op('Reshape', [past, g.int64([-1, nh, kvDim])]), fresh]); // [rows, heads, kvDim]
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
