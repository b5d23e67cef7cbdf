/**
 * Runs blocks [start, end) of a model for many sessions. Each session owns one growable cache buffer per layer,
 * time-major with rows [k | v]; the prefix of P rows is fed to the graph zero-copy and the graph's new rows are
 * written in place at the session's position. Rewind just moves the position back.
 */
import { dequantize } from '../model/quant.js';
import type { ModelConfig, ModelSource } from '../model/types.js';
import { CacheBudgetError, DuplicateSessionError, InvalidSpanError, InvalidStepError, KernelError, UnknownSessionError } from './errors.js';
import { RopeTable } from './rope.js';
import { createOrtSession, ort, SerialQueue } from './runtime.js';
import { buildSpanGraph, SpanIO, type LayerWeights } from './span-graph.js';
import type { EngineOptions, SessionInfo, SpanExecutor, SpanRange, SpanStep } from './types.js';
import { concatLinear, toLinearWeight } from './weights.js';

export interface SpanLoadOptions extends EngineOptions {
  /** Decode steps of up to this many sessions run as one graph call. Default 8. */
  readonly maxBatch?: number;
  /** Called after each layer's weights are read, for progress display. */
  readonly onLayer?: (done: number, total: number) => void;
}

interface CacheSession {
  readonly id: string;
  readonly maxLength: number;
  position: number;
  capacity: number;
  /** One buffer per layer: [capacity, 2·kvDim]. */
  layers: Float32Array[];
}

const INITIAL_CAPACITY = 256;
const DEFAULT_BUDGET_BYTES = 2 * 1024 ** 3;

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

export async function loadSpan(source: ModelSource, range: SpanRange, options: SpanLoadOptions = {}): Promise<SpanExecutor> {
  const c = source.config;
  if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end > c.numLayers || range.start >= range.end) {
    throw new InvalidSpanError(`block range [${range.start}, ${range.end}) does not fit a model of ${c.numLayers} blocks`);
  }
  const layers: LayerWeights[] = [];
  for (let l = range.start; l < range.end; l++) {
    layers.push(readLayerWeights(source, l));
    options.onLayer?.(l - range.start + 1, range.end - range.start);
  }
  const maxBatch = Math.max(1, options.maxBatch ?? 8);
  const graph = buildSpanGraph({ config: c, layers, maxBatch, name: `span_${range.start}_${range.end}` });
  const session = await createOrtSession(graph, options);
  return new OrtSpanExecutor(c, range, session, maxBatch, options.cacheBudgetBytes ?? DEFAULT_BUDGET_BYTES);
}

class OrtSpanExecutor implements SpanExecutor {
  readonly hiddenSize: number;
  readonly cacheBytesPerToken: number;
  private readonly sessions = new Map<string, CacheSession>();
  private readonly queue = new SerialQueue();
  private readonly rope: RopeTable;
  private readonly rowWidth: number;
  private readonly numLayers: number;
  private reservedTokens = 0;
  private masks = new Map<number, ort.Tensor>();

  constructor(
    private readonly config: ModelConfig,
    readonly range: SpanRange,
    private readonly ort: ort.InferenceSession,
    private readonly maxBatch: number,
    private readonly budgetBytes: number,
  ) {
    this.hiddenSize = config.hiddenSize;
    this.numLayers = range.end - range.start;
    this.rowWidth = 2 * config.numKvHeads * config.headDim;
    this.cacheBytesPerToken = this.rowWidth * 4 * this.numLayers;
    this.rope = new RopeTable(config);
  }

  cacheTokensLeft(): number {
    return Math.max(0, Math.floor(this.budgetBytes / this.cacheBytesPerToken) - this.reservedTokens);
  }

  openSession(id: string, maxLength: number): SessionInfo {
    if (this.sessions.has(id)) throw new DuplicateSessionError(id);
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new InvalidStepError(`max_length must be a positive integer, got ${maxLength}`);
    const left = this.cacheTokensLeft();
    if (maxLength > left) throw new CacheBudgetError(maxLength, left);
    this.reservedTokens += maxLength;
    const capacity = Math.min(maxLength, INITIAL_CAPACITY);
    const layers = Array.from({ length: this.numLayers }, () => new Float32Array(capacity * this.rowWidth));
    this.sessions.set(id, { id, maxLength, position: 0, capacity, layers });
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
    // Slot 0 may hold many tokens; the others must be single tokens. Put the widest step first.
    const order = steps.map((_, i) => i).sort((a, b) => this.tokensOf(steps[b]!) - this.tokensOf(steps[a]!));
    const results: Float32Array[] = new Array(steps.length);
    for (let i = 0; i < order.length; ) {
      const group = [order[i]!];
      i++;
      while (i < order.length && group.length < this.maxBatch && this.tokensOf(steps[order[i]!]!) === 1) group.push(order[i++]!);
      const outs = await this.queue.run(() => this.runGroup(group.map((g) => steps[g]!)));
      group.forEach((g, j) => (results[g] = outs[j]!));
    }
    return results;
  }

  async forward(hidden: Float32Array, tokens: number): Promise<Float32Array> {
    const id = `\u0000forward:${Math.random()}`;
    this.sessions.set(id, { id, maxLength: tokens, position: 0, capacity: tokens, layers: Array.from({ length: this.numLayers }, () => new Float32Array(tokens * this.rowWidth)) });
    try {
      return await this.step({ sessionId: id, hidden });
    } finally {
      this.sessions.delete(id);
    }
  }

  async dispose(): Promise<void> {
    this.sessions.clear();
    await this.queue.run(() => this.ort.release());
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

  private ensureCapacity(s: CacheSession, needed: number): void {
    if (needed <= s.capacity) return;
    // Grow geometrically: each token is copied O(1) times over the session's life.
    const capacity = Math.min(s.maxLength, Math.max(needed, s.capacity * 2));
    s.layers = s.layers.map((old) => {
      const grown = new Float32Array(capacity * this.rowWidth);
      grown.set(old.subarray(0, s.position * this.rowWidth));
      return grown;
    });
    s.capacity = capacity;
  }

  private causalMask(tokens: number): ort.Tensor {
    let mask = this.masks.get(tokens);
    if (!mask) {
      const nh = this.config.numHeads;
      const data = new Float32Array(tokens * nh * tokens);
      for (let t = 0; t < tokens; t++) for (let h = 0; h < nh; h++) data.fill(-Infinity, (t * nh + h) * tokens + t + 1, (t * nh + h + 1) * tokens);
      mask = new ort.Tensor('float32', data, [tokens * nh, tokens]);
      if (tokens <= 64) this.masks.set(tokens, mask); // keep small ones; big prefill masks are rebuilt
    }
    return mask;
  }

  private async runGroup(steps: readonly SpanStep[]): Promise<Float32Array[]> {
    const prepared = steps.map((s) => {
      const p = this.prepare(s);
      if (s.position !== undefined && s.position < p.session.position) p.session.position = s.position;
      return p;
    });
    if (new Set(prepared.map((p) => p.session)).size !== prepared.length) {
      throw new InvalidStepError('a batch holds two steps of the same session');
    }
    const H = this.hiddenSize;
    const rows = prepared.reduce((sum, p) => sum + p.tokens, 0);
    const hidden = new Float32Array(rows * H);
    const positions = new Int32Array(rows);
    const feeds: Record<string, ort.Tensor> = {};
    let row = 0;
    prepared.forEach((p, slot) => {
      const s = p.session;
      this.ensureCapacity(s, s.position + p.tokens);
      hidden.set(steps[slot]!.hidden, row * H);
      for (let t = 0; t < p.tokens; t++) positions[row + t] = s.position + t;
      const i64 = (values: number[]) => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [values.length]);
      feeds[SpanIO.start(slot)] = i64([row]);
      feeds[SpanIO.end(slot)] = i64([row + p.tokens]);
      feeds[SpanIO.split(slot)] = i64([s.position, p.tokens]);
      for (let l = 0; l < this.numLayers; l++) {
        feeds[SpanIO.kv(l, slot)] = new ort.Tensor('float32', s.layers[l]!.subarray(0, s.position * this.rowWidth), [s.position, this.rowWidth]);
      }
      row += p.tokens;
    });
    const half = this.rope.half;
    const cos = new Float32Array(rows * half);
    const sin = new Float32Array(rows * half);
    this.rope.fill(positions, cos, sin);
    feeds[SpanIO.hidden] = new ort.Tensor('float32', hidden, [1, rows, H]);
    feeds[SpanIO.cos] = new ort.Tensor('float32', cos, [rows, half]);
    feeds[SpanIO.sin] = new ort.Tensor('float32', sin, [rows, half]);
    feeds[SpanIO.mask] = this.causalMask(prepared[0]!.tokens);
    if (prepared.length > 1) feeds[SpanIO.slots] = new ort.Tensor('int64', BigInt64Array.from([BigInt(prepared.length)]), [1]);

    let result: ort.InferenceSession.ReturnType;
    try {
      result = await this.ort.run(feeds);
    } catch (error) {
      throw new KernelError(`span [${this.range.start}, ${this.range.end}) failed to run: ${(error as Error).message}`, { cause: error });
    }
    const out = result[SpanIO.out]!.data as Float32Array;
    const newKv = result[SpanIO.newKv]!.data as Float32Array;
    const width = this.rowWidth;
    const outputs: Float32Array[] = [];
    row = 0;
    for (const p of prepared) {
      const s = p.session;
      for (let t = 0; t < p.tokens; t++) {
        const src = (row + t) * this.numLayers * width;
        const dst = (s.position + t) * width;
        for (let l = 0; l < this.numLayers; l++) s.layers[l]!.set(newKv.subarray(src + l * width, src + (l + 1) * width), dst);
      }
      s.position += p.tokens;
      outputs.push(out.slice(row * H, (row + p.tokens) * H));
      row += p.tokens;
    }
    return outputs;
  }
}
