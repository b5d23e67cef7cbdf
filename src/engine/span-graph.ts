/**
 * Builds one ONNX graph for a span of Llama blocks. The design follows the costs measured on onnxruntime-node
 * (≈30 µs per run, ≈3.5 µs per fed input, ≈1 µs per node; every output is copied into a new JS buffer) and keeps
 * the KV cache from ever being copied per token:
 *
 * - One graph per span, so a decode step is one `session.run`.
 * - Each session keeps, per layer, a K and a V buffer in head-major layout: K transposed as [kvHeads, headDim, C]
 *   and V as [kvHeads, C, headDim], where C is the session's capacity. They are fed whole and zero-copy; a mask
 *   hides the rows past the session's position (and outside a sliding window). Scores are then one MatMul per KV
 *   head of its query heads [group, headDim] by its keys [headDim, C], and the output one MatMul of the
 *   probabilities by its values [C, headDim]: every multiply is real work, with no block-diagonal padding.
 *   The graph returns only the new rows; the host writes them in place. (onnxruntime's GroupQueryAttention would
 *   write them itself, but onnxruntime-node copies every fetched output back, which costs the whole cache.)
 * - The cache may be kept in f16 (as llama.cpp does by default): decode at long context reads the whole cache each
 *   step and is bound by memory bandwidth, so half the bytes is most of the speed. The new rows are rounded to f16
 *   in the graph before use, so a token attends to itself exactly as later tokens will.
 * - Prefill (more than one token, one session) takes its own branch, where the queries of all its tokens make one
 *   MatMul per KV head.
 * - Batched decode has its own graph of a fixed number of slots (one token each). onnxruntime-node must be fed
 *   every declared input, so the slots past the sessions of a call are fed empty (no row, no cache): the matmuls
 *   run on the call's rows only, and an empty slot costs its feeds and a few zero-size nodes. That is also why the
 *   single-session graph stays apart: fed through the batch graph, a lone decode step pays 7 empty slots. The price
 *   is a second copy of the packed weights on servers that batch (onnxruntime-node cannot share prepacked weights
 *   between sessions, and without prepacking MatMulNBits ran 24–110× slower here). Each layer's slots sit in an If
 *   subgraph, so onnxruntime plans their buffers layer by layer: planned as one graph, creation was quadratic in
 *   the layers (a 30-block, 8-slot SmolLM2 span took 11–17 s to load; 3–4 s so).
 * - A decode slot's attention is 7 nodes (9 with an f16 cache): scores of the cached rows, the new row's score
 *   (computed for all slots at once) appended, mask, softmax, the probabilities sliced between the cached V rows
 *   (one MatMul) and the new V row (all slots at once). A single-session decode step runs the very same nodes, so
 *   batched and single steps are equal bit for bit. Its MatMuls take one query head per row ([kvHeads, group, 1,
 *   headDim] by [kvHeads, 1, headDim, C]): with one row, MLAS reads the cache in place, where with `group` rows it
 *   first packed a copy of it (at 4,000 tokens of context a 10-layer SmolLM2 step went 13.0 → 10.4 ms).
 */
import type { ModelConfig } from '../model/types.js';
import type { KvCacheType } from './kv-cache.js';
import { DataType, GraphBuilder } from './onnx/graph.js';
import type { WeightStore } from './onnx/weight-store.js';
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
  /** Blocks of the span; their weights are given one at a time to `addLayer`. */
  layerCount: number;
  /** 'single': one session, prefill or decode. 'batch': exactly `batch` single-token decode steps. */
  mode: 'single' | 'batch';
  /** Slots of a 'batch' graph (required there). */
  batch?: number;
  /** Prefix for weight names, unique per span: graphs of one span share their weights through one store. */
  name: string;
  /** The graph's own name (default `name`). */
  graphName?: string;
  /** Where the weights go (default: memory). */
  weights?: WeightStore;
  /** MatMulNBits accuracy level: 4 quantizes activations to int8, 0 keeps them f32. */
  accuracyLevel?: number;
  /** Element type of the KV cache fed and returned (default f32). */
  kvCacheType?: KvCacheType;
}

/** Input and output names, shared with the executor. */
export const SpanIO = {
  hidden: 'hidden',
  cos: 'cos',
  sin: 'sin',
  /** bool [1]: true for a prefill step (single mode). */
  prefill: 'prefill',
  /** int64 [1] of a prefill step: P, the rows held (its position). */
  held: 'held',
  /**
   * Additive mask of a slot's scores over [cached rows | new rows]: [1, 1, C + 1] for a decode slot (the whole
   * capacity C is fed), [tokens, 1, P + tokens] for a prefill step (the P rows held). It hides the rows past the
   * session's position, the later new rows, and the rows outside a sliding window.
   */
  mask: (slot: number) => `mask_${slot}`,
  /** K cache of a layer and slot, transposed: [kvHeads, 1, headDim, C] ([kvHeads, 1, headDim, 0] for an empty slot). */
  k: (layer: number, slot: number) => `k_${layer}_${slot}`,
  /** V cache of a layer and slot: [kvHeads, 1, C, headDim] ([kvHeads, 1, 0, headDim] for an empty slot). */
  v: (layer: number, slot: number) => `v_${layer}_${slot}`,
  /** int64 [slots] of a batch graph: rows per slot, 1, or 0 for the empty slots past the rows fed. */
  slotRows: 'slot_rows',
  out: 'out',
  /** New K and V rows of every layer side by side: [tokens, layers · (k | v)], in the cache's element type. */
  newKv: 'new_kv',
} as const;

function f32bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Emits x·Wᵀ for a stored [n, k] weight; x is [1, rows, k], or [rows, k] with `x2d`. */
export function linear(g: GraphBuilder, x: string, w: LinearWeight, name: string, accuracyLevel = 4, x2d = false): string {
  if (w.kind === 'stack') return g.op('Concat', w.parts.map((p, i) => linear(g, x, p, `${name}.${i}`, accuracyLevel, x2d)), { axis: -1 });
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
  // Gemm reads the weight as stored ([n, k], transB), so no transposed copy of the f32 weights is ever made; it wants
  // a 2D input, so a span's [1, rows, k] is flattened and put back.
  const wt = g.weight(`${name}.w`, DataType.FLOAT, [w.n, w.k], f32bytes(w.data));
  if (x2d) return g.op('Gemm', [x, wt], { transB: 1 }, name);
  const y = g.op('Gemm', [g.op('Reshape', [x, g.int64([-1, w.k])]), wt], { transB: 1 }, name);
  return g.op('Reshape', [y, g.int64([1, -1, w.n])]);
}


function batchSlots(spec: SpanGraphSpec): number {
  if (!Number.isInteger(spec.batch) || spec.batch! < 2) throw new RangeError(`a batch graph needs batch ≥ 2 slots, got ${spec.batch}`);
  return spec.batch!;
}

/** A span graph under construction: its layers are added in order, each from weights the builder does not keep. */
export interface SpanGraphBuilder {
  addLayer(weights: LayerWeights): void;
  /** The finished graph, once every layer has been added. */
  finish(): GraphBuilder;
}

export function spanGraphBuilder(spec: SpanGraphSpec): SpanGraphBuilder {
  const { config: c, name } = spec;
  const layerCount = spec.layerCount;
  const level = spec.accuracyLevel ?? 4;
  const slotCount = spec.mode === 'batch' ? batchSlots(spec) : 1;
  const f16 = spec.kvCacheType === 'f16';
  const cacheType = f16 ? DataType.FLOAT16 : DataType.FLOAT;
  const H = c.hiddenSize;
  const nh = c.numHeads;
  const kvh = c.numKvHeads;
  const hd = c.headDim;
  const group = nh / kvh;
  const qDim = nh * hd;
  const kvDim = kvh * hd;
  const g = new GraphBuilder(spec.graphName ?? name, { weights: spec.weights });

  const hidden = g.input(SpanIO.hidden, DataType.FLOAT, [1, 'N', H]);
  const cos = g.input(SpanIO.cos, DataType.FLOAT, ['N', hd / 2]);
  const sin = g.input(SpanIO.sin, DataType.FLOAT, ['N', hd / 2]);
  const single = spec.mode === 'single';
  const prefill = single ? g.input(SpanIO.prefill, DataType.BOOL, [1]) : '';
  const held = single ? g.input(SpanIO.held, DataType.INT64, [1]) : '';
  const masks = Array.from({ length: slotCount }, (_, s) => g.input(SpanIO.mask(s), DataType.FLOAT, [single ? 'T' : 1, 1, `M${s}`]));
  const slotRows = slotCount > 1 ? g.input(SpanIO.slotRows, DataType.INT64, [slotCount]) : '';
  const anyRows = slotCount > 1 ? g.op('Cast', [g.op('ReduceMax', [slotRows], { keepdims: 1 })], { to: DataType.BOOL }) : '';
  const cacheInputs = Array.from({ length: layerCount }, (_, l) =>
    Array.from({ length: slotCount }, (_, s) => ({
      k: g.input(SpanIO.k(l, s), cacheType, [kvh, `R${s}`, hd, `C${s}`]),
      v: g.input(SpanIO.v(l, s), cacheType, [kvh, `R${s}`, `C${s}`, hd]),
    })),
  );
  const scaleConst = g.float([1 / Math.sqrt(hd)]);
  const zeroPos = g.int64([0]);
  const lastAxis = g.int64([-1]);
  const allButLast = [g.int64([0]), g.int64([-1]), lastAxis];
  const lastOnly = [g.int64([-1]), g.int64([Number.MAX_SAFE_INTEGER]), lastAxis];
  const cached = (b: GraphBuilder, x: string) => (f16 ? b.op('Cast', [x], { to: DataType.FLOAT }) : x);

  /**
   * Decode attention of every slot, one token each; a batch graph's slots past the rows fed are empty (no row, no
   * cache), so a call costs what its sessions need, not the graph's slot count. The queries are laid out
   * [kvHeads, group, rows, headDim] so that each query head's product with its cache is a matrix of one row: MLAS
   * runs those without packing the cache (packing it cost more than the product). `q4` is [kvHeads, group, rows,
   * headDim], already scaled; returns [1, rows, qDim].
   */
  const decodeAttention = (b: GraphBuilder, l: number, q4: string, k2: string, v2: string) => {
    // [rows, kvDim] → [kvHeads, 1, rows, headDim]
    const newRows = (x: string) => b.op('Transpose', [b.op('Reshape', [x, g.int64([-1, kvh, 1, hd])])], { perm: [1, 2, 0, 3] });
    // Every row's score against its own new key, per head, summed the same way for any row count.
    const own = b.op('ReduceSum', [b.op('Mul', [q4, newRows(k2)]), g.int64([3])], { keepdims: 1 }); // [kvh, group, rows, 1]
    const qs = slotCount === 1 ? [q4] : b.node('Split', [q4, slotRows], { attrs: { axis: 2 }, outputs: slotCount });
    const owns = slotCount === 1 ? [own] : b.node('Split', [own, slotRows], { attrs: { axis: 2 }, outputs: slotCount });
    const past: string[] = [];
    const fresh: string[] = [];
    for (let s = 0; s < slotCount; s++) {
      const { k, v } = cacheInputs[l]![s]!;
      const scores = b.op('Add', [b.op('Concat', [b.op('MatMul', [qs[s]!, cached(b, k)]), owns[s]!], { axis: -1 }), masks[s]!]);
      const p = b.op('Softmax', [scores], { axis: -1 }); // [kvh, group, r, C + 1]
      past.push(b.op('MatMul', [b.op('Slice', [p, ...allButLast]), cached(b, v)]));
      fresh.push(b.op('Slice', [p, ...lastOnly]));
    }
    const cat = (xs: string[]) => (xs.length === 1 ? xs[0]! : b.op('Concat', xs, { axis: 2 }));
    const out = b.op('Add', [cat(past), b.op('Mul', [cat(fresh), newRows(v2)])]); // [kvh, group, rows, hd]
    return b.op('Reshape', [b.op('Transpose', [out], { perm: [2, 0, 1, 3] }), g.int64([1, -1, qDim])]);
  };

  /** Prefill of one session: the queries of all its tokens make one MatMul per KV head, over cache and new rows. */
  const prefillBranch = (l: number, q4: string, k2: string, v2: string) => {
    const b = g.child(`prefill_${l}`);
    const { k, v } = cacheInputs[l]![0]!;
    const rows = b.op('Reshape', [q4, g.int64([kvh, 1, -1, hd])]); // [kvh, 1, group·T, hd]
    const newK = b.op('Transpose', [b.op('Reshape', [k2, g.int64([-1, kvh, 1, hd])])], { perm: [1, 2, 3, 0] }); // [kvh, 1, hd, T]
    const newV = b.op('Transpose', [b.op('Reshape', [v2, g.int64([-1, kvh, 1, hd])])], { perm: [1, 2, 0, 3] }); // [kvh, 1, T, hd]
    // Only the P rows held are read, joined with the new ones: copying K and V costs O(P) once for T tokens, where
    // masking the capacity's unused rows would multiply them for every token, and joining scores would copy T× more.
    const allK = b.op('Concat', [cached(b, b.op('Slice', [k, zeroPos, held, g.int64([3])])), newK], { axis: 3 }); // [kvh, 1, hd, P + T]
    const allV = b.op('Concat', [cached(b, b.op('Slice', [v, zeroPos, held, g.int64([2])])), newV], { axis: 2 }); // [kvh, 1, P + T, hd]
    const scores = b.op('MatMul', [rows, allK]); // [kvh, 1, group·T, P + T]
    const shaped = b.op('Shape', [scores]);
    // [kvh, 1, group·T, P + T] → [kvh·group, T, 1, P + T] for the mask ([T, 1, P + T]), and back.
    const masked = b.op('Add', [b.op('Reshape', [scores, g.int64([kvh * group, -1, 1, 0])]), masks[0]!]);
    const p = b.op('Reshape', [b.op('Softmax', [masked], { axis: -1 }), shaped]);
    const out = b.op('MatMul', [p, allV]); // [kvh, 1, group·T, hd]
    const tokens = b.op('Transpose', [b.op('Reshape', [out, g.int64([kvh, group, -1, hd])])], { perm: [2, 0, 1, 3] });
    b.output(b.op('Reshape', [tokens, g.int64([1, -1, qDim])]), DataType.FLOAT, [1, 'N', qDim]);
    return b.toGraph();
  };

  let residual = hidden;
  let pending: string | undefined; // the previous layer's FFN output, not yet added to the residual
  const newKvs: string[] = [];
  let added = 0;
  const addLayer = (w: LayerWeights) => {
    if (added >= layerCount) throw new RangeError(`span graph "${name}" has room for ${layerCount} layers`);
    const l = added++;
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
    // With an f16 cache, the new rows are rounded as they will be stored, so a token sees itself as later ones do.
    // The rounded rows are kept in f16 until the graph returns them: held across all the layers, f32 copies cost
    // 2.5× the memory (14 MB more at peak for a 256-token SmolLM2 prefill chunk).
    const stored = (x: string): [used: string, kept: string] => {
      if (!f16) return [x, x];
      const half = g.op('Cast', [x], { to: DataType.FLOAT16 });
      return [g.op('Cast', [half], { to: DataType.FLOAT }), half];
    };
    const [k2, keptK] = stored(g.op('Reshape', [k!, g.int64([-1, kvDim])]));
    const [v2, keptV] = stored(g.op('Reshape', [v!, g.int64([-1, kvDim])]));
    newKvs.push(keptK, keptV);
    // [1, rows, qDim] → [kvHeads, group, rows, headDim], scaled once. Both branches read it from outside, so neither
    // fuses the scale into its MatMul (batched and single decode steps must run the same kernels).
    const q4 = g.op('Mul', [g.op('Transpose', [g.op('Reshape', [q!, g.int64([-1, kvh, group, hd])])], { perm: [1, 2, 0, 3] }), scaleConst]);

    let attn: string;
    if (single) {
      const decode = g.child(`decode_${l}`);
      decode.output(decodeAttention(decode, l, q4, k2, v2), DataType.FLOAT, [1, 'N', qDim]);
      attn = g.op('If', [prefill], { then_branch: { graph: prefillBranch(l, q4, k2, v2) }, else_branch: { graph: decode.toGraph() } });
    } else {
      // In a subgraph, so that onnxruntime plans it apart (see the header): the slots' tensors, whose row and score
      // counts it cannot infer, never match a freed buffer, and in one graph its free list grew with every layer.
      // A call always has rows; the else branch only gives the If its type.
      const decode = g.child(`decode_${l}`);
      decode.output(decodeAttention(decode, l, q4, k2, v2), DataType.FLOAT, [1, 'N', qDim]);
      const none = g.child(`no_rows_${l}`);
      none.output(none.op('Identity', [q!]), DataType.FLOAT, [1, 'N', qDim]);
      attn = g.op('If', [anyRows], { then_branch: { graph: decode.toGraph() }, else_branch: { graph: none.toGraph() } });
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
  };

  const finish = () => {
    if (added !== layerCount) throw new RangeError(`span graph "${name}" has ${added} of its ${layerCount} layers`);
    g.node('Add', [pending!, residual], { outputs: [SpanIO.out] });
    g.output(SpanIO.out, DataType.FLOAT, [1, 'N', H]);
    // New rows of every layer side by side: [tokens, layers · (k | v)].
    g.node('Concat', newKvs, { attrs: { axis: 1 }, outputs: [SpanIO.newKv] });
    g.output(SpanIO.newKv, cacheType, ['N', layerCount * 2 * kvDim]);
    return g;
  };
  return { addLayer, finish };
}
