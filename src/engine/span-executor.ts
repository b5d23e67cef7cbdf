/**
 * Runs blocks [start, end) of a model for many sessions. Each session owns a K and a V buffer per layer, head-major
 * (K transposed), fed to the graph whole and zero-copy; the graph's new rows are written in place at the session's
 * position. Rewind just moves the position back.
 *
 * A buffer's capacity is a function of the tokens it must hold (see capacityFor), not of the session's history, so
 * a replayed or rewound session feeds the graph the same shapes, and gets the same results bit for bit, as the
 * session it stands in for.
 */
import { dequantize } from '../model/quant.js';
import type { ModelConfig, ModelSource } from '../model/types.js';
import { collectGarbage } from '../util/gc.js';
import { DEFAULT_CACHE_BUDGET_BYTES, DEFAULT_PREFILL_CHUNK_TOKENS } from './defaults.js';
import { CacheBudgetError, ContextLengthError, DuplicateSessionError, InvalidSpanError, InvalidStepError, KernelError, UnknownSessionError } from './errors.js';
import { RopeTable } from './rope.js';
import { createOrtSession, ort, SerialQueue } from './runtime.js';
import { capacityFor, kvCacheBytesPerToken, type KvCacheType } from './kv-cache.js';
import { spanGraphBuilder, SpanIO, type LayerWeights, type SpanGraphBuilder } from './span-graph.js';
import { openWeightStore } from './onnx/weight-store.js';
import type { EngineOptions, SessionInfo, SpanExecutor, BlockRange, SpanStep } from './types.js';
import { concatLinear, toLinearWeight } from './weights.js';

export interface SpanLoadOptions extends EngineOptions {
  /**
   * Decode steps of up to this many sessions run as one graph call. Default 1 (no batching). Above 1, a second
   * graph is built for batches, which costs a second copy of the span's packed weights.
   */
  readonly maxBatch?: number;
  /**
   * Most tokens of one prefill graph call (default DEFAULT_PREFILL_CHUNK_TOKENS): a longer step runs as several
   * calls, which bounds attention memory and the time one call blocks the event loop.
   */
  readonly prefillChunkTokens?: number;
  /** Called after each layer's weights are read, for progress display. */
  readonly onLayer?: (done: number, total: number) => void;
}

/** A cache buffer: f32, or f16 bits. */
type CacheArray = Float32Array | Uint16Array;

interface CacheSession {
  readonly id: string;
  readonly maxLength: number;
  position: number;
  capacity: number;
  /** Per layer: K transposed, [kvHeads, headDim, capacity], at the start of a buffer with room for more. */
  keys: CacheArray[];
  /** Per layer: V, [kvHeads, capacity, headDim], likewise. */
  values: CacheArray[];
  /** Per layer: the K and V tensors fed to the graph, views of `keys` and `values` at the current capacity. */
  keyFeeds: ort.Tensor[];
  valueFeeds: ort.Tensor[];
}

export { DEFAULT_CACHE_BUDGET_BYTES, DEFAULT_PREFILL_CHUNK_TOKENS };

export function readLayerWeights(source: ModelSource, layer: number): LayerWeights {
  const t = (suffix: string) => source.readTensor(`blk.${layer}.${suffix}`);
  const names = new Set(source.tensorNames());
  const has = (suffix: string) => names.has(`blk.${layer}.${suffix}`);
  const bias = has('attn_q.bias')
    ? Float32Array.from([...dequantize(t('attn_q.bias')), ...dequantize(t('attn_k.bias')), ...dequantize(t('attn_v.bias'))])
    : undefined;
  return {
    attnNorm: dequantize(t('attn_norm')),
    qkv: concatLinear([toLinearWeight(t('attn_q')), toLinearWeight(t('attn_k')), toLinearWeight(t('attn_v'))]),
    qkvBias: bias,
    output: toLinearWeight(t('attn_output')),
    ffnNorm: dequantize(t('ffn_norm')),
    gateUp: concatLinear([toLinearWeight(t('ffn_gate')), toLinearWeight(t('ffn_up'))]),
    down: toLinearWeight(t('ffn_down')),
  };
}

export async function loadSpan(source: ModelSource, range: BlockRange, options: SpanLoadOptions = {}): Promise<SpanExecutor> {
  const c = source.config;
  if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end > c.numLayers || range.start >= range.end) {
    throw new InvalidSpanError(`block range [${range.start}, ${range.end}) does not fit a model of ${c.numLayers} blocks`);
  }
  const chunk = options.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`prefillChunkTokens must be a positive integer, got ${chunk}`);
  const maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 1));
  const name = `span_${range.start}_${range.end}`;
  const accuracyLevel = options.quantizedActivations === false ? 0 : 4;
  const kvCacheType = options.kvCacheType ?? 'f32';
  const layerCount = range.end - range.start;
  const weights = openWeightStore(options.stagingDir);
  let single: ort.InferenceSession | undefined;
  let batch: ort.InferenceSession | undefined;
  try {
    // One layer's weights at a time go into the store, which both graphs share.
    const spec = { config: c, layerCount, name, accuracyLevel, kvCacheType, weights };
    const builders = [spanGraphBuilder({ ...spec, mode: 'single' })];
    if (maxBatch > 1) builders.push(spanGraphBuilder({ ...spec, mode: 'batch', batch: maxBatch, graphName: `${name}_b${maxBatch}` }));
    addLayers(source, range, builders, options.onLayer);
    const [singleGraph, batchGraph] = builders.map((b) => b.finish());
    single = await createOrtSession(singleGraph!, options);
    if (batchGraph) batch = await createOrtSession(batchGraph, options);
  } catch (error) {
    await single?.release();
    throw error;
  } finally {
    weights.dispose();
  }
  collectGarbage();
  return new OrtSpanExecutor(c, new RopeTable(source), range, single, batch, maxBatch, options.cacheBudgetBytes ?? DEFAULT_CACHE_BUDGET_BYTES, chunk, kvCacheType);
}

/** Reads the span's layers one at a time into every builder; apart from loadSpan, whose suspended frame would keep the last one. */
function addLayers(source: ModelSource, range: BlockRange, builders: readonly SpanGraphBuilder[], onLayer?: (done: number, total: number) => void): void {
  for (let l = range.start; l < range.end; l++) {
    const layer = readLayerWeights(source, l);
    for (const b of builders) b.addLayer(layer);
    onLayer?.(l - range.start + 1, range.end - range.start);
  }
}

class OrtSpanExecutor implements SpanExecutor {
  readonly hiddenSize: number;
  readonly cacheBytesPerToken: number;
  private readonly sessions = new Map<string, CacheSession>();
  private readonly queue = new SerialQueue();
  private readonly kvDim: number;
  private readonly numLayers: number;
  private reservedTokens = 0;
  private readonly emptyKeys: ort.Tensor;
  private readonly emptyValues: ort.Tensor;
  /** The batch graph's slot_rows input for each number of sessions in a call (index: sessions). */
  private readonly slotRows: ort.Tensor[];
  private forwardSerial = 0;

  constructor(
    private readonly config: ModelConfig,
    private readonly rope: RopeTable,
    readonly range: BlockRange,
    private readonly single: ort.InferenceSession,
    private readonly batch: ort.InferenceSession | undefined,
    private readonly maxBatch: number,
    private readonly budgetBytes: number,
    readonly prefillChunkTokens: number,
    private readonly kvCacheType: KvCacheType,
  ) {
    this.hiddenSize = config.hiddenSize;
    this.numLayers = range.end - range.start;
    this.kvDim = config.numKvHeads * config.headDim;
    this.cacheBytesPerToken = kvCacheBytesPerToken(config, this.numLayers, kvCacheType);
    const { numKvHeads: kvh, headDim: hd } = config;
    this.emptyKeys = this.cacheTensor(this.cacheArray(0), [kvh, 1, hd, 0]);
    this.emptyValues = this.cacheTensor(this.cacheArray(0), [kvh, 1, 0, hd]);
    this.slotRows = Array.from({ length: maxBatch + 1 }, (_, rows) => new ort.Tensor('int64', BigInt64Array.from({ length: maxBatch }, (_, s) => (s < rows ? 1n : 0n)), [maxBatch]));
  }

  get contextLength(): number {
    return this.config.maxPositionEmbeddings;
  }

  cacheTokensLeft(): number {
    return Math.max(0, Math.floor(this.budgetBytes / this.cacheBytesPerToken) - this.reservedTokens);
  }

  openSession(id: string, maxLength: number): SessionInfo {
    if (this.sessions.has(id)) throw new DuplicateSessionError(id);
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new InvalidStepError(`max_length must be a positive integer, got ${maxLength}`);
    if (maxLength > this.contextLength) throw new ContextLengthError(maxLength, this.contextLength);
    const left = this.cacheTokensLeft();
    if (maxLength > left) throw new CacheBudgetError(maxLength, left);
    this.reservedTokens += maxLength;
    const empty = () => Array.from({ length: this.numLayers }, () => this.cacheArray(0));
    this.sessions.set(id, { id, maxLength, position: 0, capacity: 0, keys: empty(), values: empty(), keyFeeds: [], valueFeeds: [] });
    return { id, maxLength, position: 0 };
  }

  closeSession(id: string): void {
    const s = this.sessions.get(id);
    if (!s) return;
    this.reservedTokens -= s.maxLength;
    this.sessions.delete(id);
  }

  session(id: string): SessionInfo | undefined {
    const s = this.sessions.get(id);
    return s && { id: s.id, maxLength: s.maxLength, position: s.position };
  }

  rewind(id: string, position: number): void {
    const s = this.require(id);
    if (!Number.isInteger(position) || position < 0 || position > s.position) {
      throw new InvalidStepError(`cannot rewind session "${id}" to ${position}: it holds ${s.position} tokens`);
    }
    s.position = position;
  }

  async step(step: SpanStep): Promise<Float32Array> {
    return (await this.stepBatch([step]))[0]!;
  }

  async stepBatch(steps: readonly SpanStep[]): Promise<Float32Array[]> {
    if (steps.length === 0) return [];
    // Validate everything first, so a bad step fails alone before any cache is touched.
    for (const step of steps) this.prepare(step);
    if (new Set(steps.map((s) => s.sessionId)).size !== steps.length) throw new InvalidStepError('a batch holds two steps of the same session');
    // Single-token steps run together, up to maxBatch per call; multi-token (prefill) steps run alone, in chunks.
    const results: Float32Array[] = new Array(steps.length);
    const decodes = steps.map((_, i) => i).filter((i) => this.tokensOf(steps[i]!) === 1);
    for (const i of steps.keys()) if (this.tokensOf(steps[i]!) > 1) results[i] = await this.prefill(steps[i]!);
    for (let i = 0; i < decodes.length; i += this.maxBatch) {
      const group = decodes.slice(i, i + this.maxBatch);
      const outs = await this.queue.run(() => this.runGroup(group.map((g) => steps[g]!)));
      group.forEach((g, j) => (results[g] = outs[j]!));
    }
    return results;
  }

  /**
   * Runs a multi-token step as graph calls of at most prefillChunkTokens tokens, each attending to the cache so far
   * plus itself, and yields to the event loop between them (a graph call runs on the main thread). The chunks are
   * the steps a caller would get by splitting the step itself at the same boundaries, so results are equal bit for bit.
   */
  private async prefill(step: SpanStep): Promise<Float32Array> {
    const tokens = this.tokensOf(step);
    const chunk = this.prefillChunkTokens;
    if (tokens <= chunk) return (await this.queue.run(() => this.runGroup([step])))[0]!;
    const H = this.hiddenSize;
    const start = step.position ?? this.require(step.sessionId).position;
    const out = new Float32Array(tokens * H);
    for (let t = 0; t < tokens; t += chunk) {
      if (t > 0) await yieldToEventLoop();
      const n = Math.min(chunk, tokens - t);
      // Room for the whole step from its first chunk on: the cache grows once.
      const part = { sessionId: step.sessionId, hidden: step.hidden.subarray(t * H, (t + n) * H), position: start + t, reserve: start + tokens };
      out.set((await this.queue.run(() => this.runGroup([part])))[0]!, t * H);
    }
    return out;
  }

  async forward(hidden: Float32Array, tokens: number): Promise<Float32Array> {
    // A forward's cache is a session's: it counts against the budget while the forward runs.
    const id = `\u0000forward:${++this.forwardSerial}`;
    this.openSession(id, tokens);
    try {
      return await this.step({ sessionId: id, hidden });
    } finally {
      this.closeSession(id);
    }
  }

  async dispose(): Promise<void> {
    this.sessions.clear();
    await this.queue.run(async () => {
      await this.single.release();
      await this.batch?.release();
    });
  }

  private cacheArray(length: number): CacheArray {
    return this.kvCacheType === 'f16' ? new Uint16Array(length) : new Float32Array(length);
  }

  private cacheTensor(data: CacheArray, dims: readonly number[]): ort.Tensor {
    return data instanceof Uint16Array ? new ort.Tensor('float16', data, dims) : new ort.Tensor('float32', data, dims);
  }

  private tokensOf(step: SpanStep): number {
    return step.hidden.length / this.hiddenSize;
  }

  private require(id: string): CacheSession {
    const s = this.sessions.get(id);
    if (!s) throw new UnknownSessionError(id);
    return s;
  }

  /** Validates a step and returns its session and token count, rewinding first when asked. */
  private prepare(step: SpanStep): { session: CacheSession; tokens: number } {
    const session = this.require(step.sessionId);
    const tokens = this.tokensOf(step);
    if (!Number.isInteger(tokens) || tokens < 1) {
      throw new InvalidStepError(`hidden states of ${step.hidden.length} values are not a whole number of rows of ${this.hiddenSize}`);
    }
    const position = step.position ?? session.position;
    if (!Number.isInteger(position) || position < 0 || position > session.position) {
      throw new InvalidStepError(`step at position ${position} but session "${session.id}" holds ${session.position} tokens`);
    }
    if (position + tokens > session.maxLength) {
      throw new InvalidStepError(`step of ${tokens} tokens at position ${position} exceeds max_length ${session.maxLength} of session "${session.id}"`);
    }
    return { session, tokens };
  }

  /**
   * Gives a session the capacity capacityFor(needed, context): grown for a longer step, shrunk after a rewind, so that
   * the shapes a decode step feeds the graph depend on the step alone. A prefill step reads only the rows held, so
   * its results do not depend on the capacity: with `atLeast` it keeps a larger one, and a prefill in chunks grows
   * the cache once, not once per chunk.
   *
   * The rows are re-laid out in place while the buffers have room, and moved to buffers with room for twice the
   * tokens (up to maxLength) when they have not. Fresh memory is what a re-layout costs most (a page fault for every
   * 4 KiB written, about 19 µs each on a VM that hands freed memory back to its host), so growth reuses it.
   */
  private fitCapacity(s: CacheSession, needed: number, atLeast = false): void {
    // Bounded by the model's context, not the session's maxLength, so that sessions of different maxLength (a local
    // reference, a replacement server) feed equal shapes. The rows past maxLength (under an eighth, or 64) are slack
    // the budget, which counts maxLength tokens, does not count.
    const exact = capacityFor(needed, this.contextLength);
    const capacity = atLeast ? Math.max(exact, s.capacity) : exact;
    if (capacity === s.capacity) return;
    const { numKvHeads: kvh, headDim: hd } = this.config;
    const rows = Math.min(s.position, capacity);
    // The capacity the buffers have room for: every layer's K buffer holds kvHeads × headDim runs of it.
    const room = s.keys[0]!.length / (kvh * hd);
    if (capacity > room) {
      const grown = Math.max(capacity, capacityFor(Math.min(s.maxLength, 2 * needed), this.contextLength));
      s.keys = s.keys.map((old) => relayoutInto(this.cacheArray(kvh * hd * grown), old, kvh * hd, 1, s.capacity, capacity, rows));
      s.values = s.values.map((old) => relayoutInto(this.cacheArray(kvh * grown * hd), old, kvh, hd, s.capacity, capacity, rows));
    } else {
      for (const keys of s.keys) relayoutInto(keys, keys, kvh * hd, 1, s.capacity, capacity, rows);
      for (const values of s.values) relayoutInto(values, values, kvh, hd, s.capacity, capacity, rows);
    }
    s.capacity = capacity;
    s.keyFeeds = s.keys.map((keys) => this.cacheTensor(keys.subarray(0, kvh * hd * capacity), [kvh, 1, hd, capacity]));
    s.valueFeeds = s.values.map((values) => this.cacheTensor(values.subarray(0, kvh * capacity * hd), [kvh, 1, capacity, hd]));
  }

  /** The first position a token at `position` attends to: 0, or with a sliding window the oldest inside it. */
  private windowStart(position: number): number {
    const w = this.config.slidingWindow;
    return w === undefined ? 0 : Math.max(0, position - w + 1);
  }

  /**
   * The additive mask over [`columns` cached rows | `tokens` new rows] of a step at position `past`: [tokens, 1,
   * columns + tokens]. Query t (position past + t) sees cached rows from its window's start up to past, and new rows
   * up to itself.
   */
  private mask(past: number, columns: number, tokens: number): ort.Tensor {
    const width = columns + tokens;
    const data = new Float32Array(tokens * width).fill(-Infinity);
    for (let t = 0; t < tokens; t++) {
      const first = this.windowStart(past + t);
      const row = t * width;
      if (first < past) data.fill(0, row + first, row + past);
      data.fill(0, row + columns + Math.max(0, first - past), row + columns + t + 1);
    }
    return new ort.Tensor('float32', data, [tokens, 1, width]);
  }

  /** Runs one graph call; a prefill chunk's `reserve` is the position its whole step reaches. */
  private async runGroup(steps: readonly (SpanStep & { reserve?: number })[]): Promise<Float32Array[]> {
    const prepared = steps.map((step) => {
      const p = this.prepare(step); // again: an earlier group may have moved this session
      if (step.position !== undefined) p.session.position = step.position; // rewind (replay, speculation)
      this.fitCapacity(p.session, Math.max(p.session.position + p.tokens, step.reserve ?? 0), p.tokens > 1);
      return p;
    });
    const batched = prepared.length > 1;
    // The batch graph has a fixed number of slots; those past the sessions here stay empty (no row, no cache).
    const slotCount = batched ? this.maxBatch : 1;
    const H = this.hiddenSize;
    const { numKvHeads: kvh, headDim: hd } = this.config;
    const rows = batched ? prepared.length : prepared[0]!.tokens;
    const hidden = new Float32Array(rows * H);
    const positions = new Int32Array(rows);
    const feeds: Record<string, ort.Tensor> = {};
    let row = 0;
    for (let slot = 0; slot < slotCount; slot++) {
      const p = prepared[slot];
      if (!p) {
        feeds[SpanIO.mask(slot)] = EMPTY_MASK;
        for (let l = 0; l < this.numLayers; l++) {
          feeds[SpanIO.k(l, slot)] = this.emptyKeys;
          feeds[SpanIO.v(l, slot)] = this.emptyValues;
        }
        continue;
      }
      const { position, capacity } = p.session;
      hidden.set(steps[slot]!.hidden, row * H);
      for (let t = 0; t < p.tokens; t++) positions[row + t] = position + t;
      // A decode step reads the whole capacity (masked past the position); a prefill step only the rows held.
      feeds[SpanIO.mask(slot)] = this.mask(position, p.tokens > 1 ? position : capacity, p.tokens);
      for (let l = 0; l < this.numLayers; l++) {
        feeds[SpanIO.k(l, slot)] = p.session.keyFeeds[l]!;
        feeds[SpanIO.v(l, slot)] = p.session.valueFeeds[l]!;
      }
      row += p.tokens;
    }
    if (batched) feeds[SpanIO.slotRows] = this.slotRows[rows]!;
    const half = this.rope.half;
    const cos = new Float32Array(rows * half);
    const sin = new Float32Array(rows * half);
    this.rope.fill(positions, cos, sin);
    feeds[SpanIO.hidden] = new ort.Tensor('float32', hidden, [1, rows, H]);
    feeds[SpanIO.cos] = new ort.Tensor('float32', cos, [rows, half]);
    feeds[SpanIO.sin] = new ort.Tensor('float32', sin, [rows, half]);
    if (!batched) {
      feeds[SpanIO.prefill] = new ort.Tensor('bool', new Uint8Array([rows > 1 ? 1 : 0]), [1]);
      feeds[SpanIO.held] = new ort.Tensor('int64', BigInt64Array.from([BigInt(prepared[0]!.session.position)]), [1]);
    }

    let result: ort.InferenceSession.ReturnType;
    try {
      result = await (batched ? this.batch! : this.single).run(feeds);
    } catch (error) {
      throw new KernelError(`span [${this.range.start}, ${this.range.end}) failed to run: ${(error as Error).message}`, { cause: error });
    }
    const out = result[SpanIO.out]!.data as Float32Array;
    const newKv = result[SpanIO.newKv]!.data as CacheArray;
    const outputs: Float32Array[] = [];
    row = 0;
    for (const p of prepared) {
      for (let t = 0; t < p.tokens; t++) this.store(p.session, p.session.position + t, newKv, row + t);
      p.session.position += p.tokens;
      outputs.push(out.slice(row * H, (row + p.tokens) * H));
      row += p.tokens;
    }
    return outputs;
  }

  /** Writes row `row` of the graph's new_kv output, every layer's K and V, at `position` of a session's cache. */
  private store(s: CacheSession, position: number, newKv: CacheArray, row: number): void {
    const { numKvHeads: kvh, headDim: hd } = this.config;
    const kvDim = this.kvDim;
    const C = s.capacity;
    let src = row * this.numLayers * 2 * kvDim;
    for (let l = 0; l < this.numLayers; l++) {
      const keys = s.keys[l]!;
      for (let c = 0; c < kvDim; c++) keys[c * C + position] = newKv[src + c]!; // c = head · hd + d
      src += kvDim;
      const values = s.values[l]!;
      for (let h = 0; h < kvh; h++) values.set(newKv.subarray(src + h * hd, src + (h + 1) * hd), (h * C + position) * hd);
      src += kvDim;
    }
  }
}

/**
 * Moves a cache layout of `groups` runs of `from` × `width` values, of which the first `rows` × `width` of each are
 * held, to runs of `to` × `width` in `target` (which may be `source`: the runs are then moved in an order where none
 * overwrites one not yet moved). The values past the rows held are left as they were: the graph masks them.
 */
function relayoutInto<T extends CacheArray>(target: T, source: CacheArray, groups: number, width: number, from: number, to: number, rows: number): T {
  const move = (g: number) => {
    if (target === source) target.copyWithin(g * to * width, g * from * width, (g * from + rows) * width);
    else target.set(source.subarray(g * from * width, (g * from + rows) * width), g * to * width);
  };
  if (to > from) for (let g = groups - 1; g >= 0; g--) move(g);
  else for (let g = 0; g < groups; g++) move(g);
  return target;
}

/** An empty slot's mask: no cached rows, and its (absent) new row. */
const EMPTY_MASK = new ort.Tensor('float32', new Float32Array(1), [1, 1, 1]);
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
