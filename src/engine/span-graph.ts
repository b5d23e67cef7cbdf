/**
 * Builds one ONNX graph for a span of Llama blocks. The design follows the costs measured on onnxruntime-node
 * (≈30 µs per run, ≈3.5 µs per fed input, ≈1 µs per node):
 *
 * - One graph per span, so a decode step is one `session.run`.
 * - Each session's KV cache is one time-major buffer per layer, rows [k | v] of 2·kvDim floats. The first P rows
 *   are a contiguous prefix, fed zero-copy. The graph returns only the new rows; the host writes them in place,
 *   so the cache is never copied per token and attention cost follows the tokens actually cached.
 * - Attention avoids transposing the cache: queries are laid out block-diagonally over KV heads ([rows·heads,
 *   2·kvDim], zero outside their own head's K columns), so scores are one GEMM against the cache prefix and the
 *   output one GEMM against it, from which each head's own V block is picked. The extra multiply-adds are cheap
 *   because decode attention is bound by reading the cache, which is read once either way.
 * - Batched decode: slot 0 takes any number of tokens (prefill or decode); slots 1..maxBatch-1 take one token each
 *   and sit behind nested `If` nodes, so a single session runs none of their nodes, and their inputs default to
 *   empty initializers, so it feeds none of them either.
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
  /** Sessions per decode batch (≥ 1). */
  maxBatch: number;
  /** Prefix for weight names, unique per span. */
  name: string;
}

/** Input and output names, shared with the executor. */
export const SpanIO = {
  hidden: 'hidden',
  cos: 'cos',
  sin: 'sin',
  mask: 'mask',
  slots: 'slots',
  kv: (layer: number, slot: number) => `kv_${layer}_${slot}`,
  split: (slot: number) => `split_${slot}`,
  start: (slot: number) => `start_${slot}`,
  end: (slot: number) => `end_${slot}`,
  out: 'out',
  newKv: 'new_kv',
} as const;

function f32bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Emits x·Wᵀ for a stored [n, k] weight. */
export function linear(g: GraphBuilder, x: string, w: LinearWeight, name: string): string {
  if (w.kind === 'nbits') {
    const blocks = w.k / w.blockSize;
    const b = g.weight(`${name}.q`, DataType.UINT8, [w.n, blocks, (w.blockSize * w.bits) / 8], w.data);
    const s = g.weight(`${name}.s`, DataType.FLOAT, [w.n * blocks], f32bytes(w.scales));
    const inputs = [x, b, s];
    if (w.zeroPoints) inputs.push(g.weight(`${name}.z`, DataType.UINT8, [w.zeroPoints.length], w.zeroPoints));
    return g.node('MatMulNBits', inputs, {
      domain: 'com.microsoft',
      attrs: { K: w.k, N: w.n, bits: w.bits, block_size: w.blockSize, accuracy_level: 4 },
      hint: name,
    })[0]!;
  }
  // MatMul wants [k, n]; transpose once at load.
  const t = new Float32Array(w.n * w.k);
  for (let r = 0; r < w.n; r++) for (let c = 0; c < w.k; c++) t[c * w.n + r] = w.data[r * w.k + c]!;
  const wt = g.weight(`${name}.w`, DataType.FLOAT, [w.k, w.n], f32bytes(t));
  return g.op('MatMul', [x, wt], undefined, name);
}

export function buildSpanGraph(spec: SpanGraphSpec): GraphBuilder {
  const { config: c, layers, maxBatch, name } = spec;
  const H = c.hiddenSize;
  const nh = c.numHeads;
  const kvh = c.numKvHeads;
  const hd = c.headDim;
  const group = nh / kvh;
  const qDim = nh * hd;
  const kvDim = kvh * hd;
  const g = new GraphBuilder(name);

  const hidden = g.input(SpanIO.hidden, DataType.FLOAT, [1, 'N', H]);
  const cos = g.input(SpanIO.cos, DataType.FLOAT, ['N', hd / 2]);
  const sin = g.input(SpanIO.sin, DataType.FLOAT, ['N', hd / 2]);
  const mask = g.input(SpanIO.mask, DataType.FLOAT, ['M', 'T']);
  const slots = g.input(SpanIO.slots, DataType.INT64, [1]);
  g.constant(slots, DataType.INT64, [1], new Uint8Array(new BigInt64Array([1n]).buffer));

  // Per-slot row ranges, in hidden rows and in block-diagonal query rows (× heads).
  const slotRows: { start: string; end: string; qStart: string; qEnd: string; split: string }[] = [];
  const conds: string[] = [];
  const headsConst = g.int64([nh]);
  const emptyKv = new Uint8Array(0);
  for (let s = 0; s < maxBatch; s++) {
    const start = g.input(SpanIO.start(s), DataType.INT64, [1]);
    const end = g.input(SpanIO.end(s), DataType.INT64, [1]);
    const split = g.input(SpanIO.split(s), DataType.INT64, [2]);
    if (s > 0) {
      // Unused slots default to harmless values so callers feed only the slots they use.
      g.constant(start, DataType.INT64, [1], new Uint8Array(new BigInt64Array([0n]).buffer));
      g.constant(end, DataType.INT64, [1], new Uint8Array(new BigInt64Array([0n]).buffer));
      g.constant(split, DataType.INT64, [2], new Uint8Array(new BigInt64Array([0n, 0n]).buffer));
      conds.push(g.op('Greater', [slots, g.int64([s])]));
    }
    slotRows.push({ start, end, split, qStart: g.op('Mul', [start, headsConst]), qEnd: g.op('Mul', [end, headsConst]) });
  }
  const kvInputs = layers.map((_, l) =>
    Array.from({ length: maxBatch }, (_, s) => {
      const input = g.input(SpanIO.kv(l, s), DataType.FLOAT, [`P${s}`, 2 * kvDim]);
      if (s > 0) g.constant(input, DataType.FLOAT, [0, 2 * kvDim], emptyKv);
      return input;
    }),
  );

  const scale = 1 / Math.sqrt(hd);
  // E_q[h', h] = scale·δ: spreads each query head over its own KV head's K columns.
  const eq = new Float32Array(kvh * kvh);
  for (let h = 0; h < kvh; h++) eq[h * kvh + h] = scale;
  const eqConst = g.float(eq, [1, kvh, 1, kvh, 1]);
  // E_v[h', s, h] = δ(h', h)·δ(s, 1): picks each head's own V block from [k | v] columns.
  const ev = new Float32Array(kvh * 2 * kvh);
  for (let h = 0; h < kvh; h++) ev[h * 2 * kvh + kvh + h] = 1;
  const evConst = g.float(ev, [1, kvh, 1, 2, kvh, 1]);
  const zeroPos = g.int64([0]);
  const axis0 = g.int64([0]);

  const attendSlot = (b: GraphBuilder, l: number, s: number, qbd: string, kvNew: string): string => {
    const r = slotRows[s]!;
    const past = kvInputs[l]![s]!;
    const q = b.op('Slice', [qbd, r.qStart, r.qEnd, axis0]);
    const kn = b.op('Slice', [kvNew, r.start, r.end, axis0]);
    const scoresPast = b.op('Gemm', [q, past], { transB: 1 });
    let scoresNew = b.op('Gemm', [q, kn], { transB: 1 });
    if (s === 0) scoresNew = b.op('Add', [scoresNew, mask]);
    const scores = b.op('Concat', [scoresPast, scoresNew], { axis: 1 });
    const probs = b.op('Softmax', [scores], { axis: -1 });
    const [pPast, pNew] = b.node('Split', [probs, r.split], { attrs: { axis: 1 }, outputs: 2 });
    return b.op('Add', [b.op('MatMul', [pPast!, past]), b.op('MatMul', [pNew!, kn])]);
  };

  /** Slots s..maxBatch-1 behind nested Ifs, each taking one more session only when present. */
  const attendRest = (b: GraphBuilder, l: number, s: number, qbd: string, kvNew: string): string => {
    const thenBranch = b.child(`then_${l}_${s}`);
    let out = attendSlot(thenBranch, l, s, qbd, kvNew);
    if (s + 1 < maxBatch) out = thenBranch.op('Concat', [out, attendRest(thenBranch, l, s + 1, qbd, kvNew)], { axis: 0 });
    thenBranch.output(out, DataType.FLOAT, ['R', 2 * kvDim]);
    const elseBranch = b.child(`else_${l}_${s}`);
    const empty = elseBranch.op('Identity', [kvInputs[l]![maxBatch - 1]!]); // an empty [0, 2·kvDim] default
    elseBranch.output(empty, DataType.FLOAT, ['R', 2 * kvDim]);
    return b.op('If', [conds[s - 1]!], { then_branch: { graph: thenBranch.toGraph() }, else_branch: { graph: elseBranch.toGraph() } });
  };

  let residual = hidden;
  let pending: string | undefined; // the previous layer's FFN output, not yet added to the residual
  const newKvs: string[] = [];
  layers.forEach((w, l) => {
    const p = `${name}.${l}`;
    let normed: string;
    if (pending === undefined) {
      normed = g.op('SimplifiedLayerNormalization', [residual, g.float(w.attnNorm)], { axis: -1, epsilon: { float: c.rmsNormEps } });
    } else {
      const outs = g.node('SkipSimplifiedLayerNormalization', [pending, residual, g.float(w.attnNorm)], {
        domain: 'com.microsoft',
        attrs: { epsilon: { float: c.rmsNormEps } },
        outputs: [g.fresh('normed'), '', '', g.fresh('resid')],
      });
      normed = outs[0]!;
      residual = outs[3]!;
    }
    let qkv = linear(g, normed, w.qkv, `${p}.qkv`);
    if (w.qkvBias) qkv = g.op('Add', [qkv, g.float(w.qkvBias)]);
    const [qk, v] = g.node('Split', [qkv, g.int64([qDim + kvDim, kvDim])], { attrs: { axis: -1 }, outputs: 2 });
    const qkRot = g.ms('RotaryEmbedding', [qk!, zeroPos, cos, sin], { interleaved: c.ropeInterleaved ? 1 : 0, num_heads: nh + kvh });
    const [q, k] = g.node('Split', [qkRot, g.int64([qDim, kvDim])], { attrs: { axis: -1 }, outputs: 2 });
    const kvNew = g.op('Reshape', [g.op('Concat', [k!, v!], { axis: -1 }), g.int64([-1, 2 * kvDim])]);
    newKvs.push(kvNew);

    const qbd5 = g.op('Mul', [g.op('Reshape', [q!, g.int64([-1, kvh, group, 1, hd])]), eqConst]);
    const qbd = g.op('Pad', [g.op('Reshape', [qbd5, g.int64([-1, kvDim])]), g.int64([0, 0, 0, kvDim])]);
    let attn = attendSlot(g, l, 0, qbd, kvNew);
    if (maxBatch > 1) attn = g.op('Concat', [attn, attendRest(g, l, 1, qbd, kvNew)], { axis: 0 });
    const picked = g.op('Mul', [g.op('Reshape', [attn, g.int64([-1, kvh, group, 2, kvh, hd])]), evConst]);
    const heads = g.op('ReduceSum', [picked, g.int64([3, 4])], { keepdims: 0 });
    const attnOut = linear(g, g.op('Reshape', [heads, g.int64([1, -1, qDim])]), w.output, `${p}.o`);

    const outs = g.node('SkipSimplifiedLayerNormalization', [attnOut, residual, g.float(w.ffnNorm)], {
      domain: 'com.microsoft',
      attrs: { epsilon: { float: c.rmsNormEps } },
      outputs: [g.fresh('normed'), '', '', g.fresh('resid')],
    });
    residual = outs[3]!;
    const gu = linear(g, outs[0]!, w.gateUp, `${p}.gu`);
    const [gate, up] = g.node('Split', [gu, g.int64([c.intermediateSize, c.intermediateSize])], { attrs: { axis: -1 }, outputs: 2 });
    const act = g.op('Mul', [g.op('Mul', [gate!, g.op('Sigmoid', [gate!])]), up!]);
    pending = linear(g, act, w.down, `${p}.down`);
  });

  g.node('Add', [pending!, residual], { outputs: [SpanIO.out] });
  g.output(SpanIO.out, DataType.FLOAT, [1, 'N', H]);
  g.node('Concat', newKvs, { attrs: { axis: 1 }, outputs: [SpanIO.newKv] });
  g.output(SpanIO.newKv, DataType.FLOAT, ['N', layers.length * 2 * kvDim]);
  return g;
}
