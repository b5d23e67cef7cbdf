/**
 * Batching across clients. Every step of every session on this server goes through one scheduler, which makes
 * the engine calls:
 *   - a multi-token step (prefill, replay) runs alone;
 *   - single-token decode steps of different sessions run together as ONE `span.stepBatch` call of up to
 *     `maxBatch` steps.
 * onnxruntime-node computes on the main thread, so while one engine call runs, the steps that arrive meanwhile
 * queue up in the socket; after each call the scheduler yields to I/O once (setImmediate) and then takes whatever
 * is queued. When the queue holds fewer decode steps than the sessions that are currently decoding (sessions with a
 * decode step in the last `activeMs`), it waits up to `windowMs` for the others, and stops waiting as soon as they
 * are all in. A lone client therefore never waits; several clients in lock step fill whole batches.
 *
 * The batch graph has a fixed number of slots (the engine pads a partial batch), so a batched call costs about the
 * same for 2 steps as for 8. The scheduler keeps estimates (median of recent calls) of a single decode call and a
 * batched call, and runs a group as single calls unless the batch saves at least 25% (e.g. 2 sessions on a tiny
 * model run alone); a memory-bound model, where a batch costs little more than one step, batches every group.
 *
 * Steps are validated by the caller before `submit`; if a batched call still fails, its steps are rerun one by
 * one, so one bad step can never fail another session's step.
 *
 * A multi-token step longer than the span's prefill chunk (a long replay, a `forward`) runs one chunk per engine
 * call, at the boundaries the engine would use itself (so the result is the same bit for bit); between chunks the
 * scheduler yields to I/O and runs the decode steps that queued meanwhile, so a long prompt neither blocks the event
 * loop nor starves other sessions for longer than one chunk.
 */
import type { SpanExecutor, SpanStep } from '../engine/types.js';
import { DEFAULT_BATCH_ACTIVE_MS, DEFAULT_BATCH_WINDOW_MS, DEFAULT_MAX_BATCH } from './defaults.js';

export interface BatchSchedulerOptions {
  /** Most decode steps in one engine call (default DEFAULT_MAX_BATCH; use the span's own maxBatch). */
  readonly maxBatch?: number;
  /** Longest wait for more decode steps before running a partial batch, in ms (default DEFAULT_BATCH_WINDOW_MS; 0 = never wait). */
  readonly windowMs?: number;
  /** A session counts as decoding for this long after its last decode step, in ms (default DEFAULT_BATCH_ACTIVE_MS). */
  readonly activeMs?: number;
}

export interface SchedulerStats {
  /** Engine calls made (step or stepBatch). */
  engineCalls: number;
  /** Steps run. */
  steps: number;
  /** Tokens run (prefill rows count each). */
  tokens: number;
  /** Number of engine calls per group size: groupSizes[n] = calls that ran n steps together. */
  groupSizes: number[];
  /** Milliseconds spent inside engine calls. */
  engineMs: number;
  /** Estimates (ms, median of recent calls) of one single-token call and one batched call; undefined until seen. */
  singleMs?: number;
  batchMs?: number;
}

interface Pending {
  readonly step: SpanStep;
  readonly tokens: number;
  readonly resolve: (out: Float32Array) => void;
  readonly reject: (error: unknown) => void;
}

const yieldToIo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class BatchScheduler {
  readonly maxBatch: number;
  readonly windowMs: number;
  readonly activeMs: number;
  readonly stats: SchedulerStats = { engineCalls: 0, steps: 0, tokens: 0, groupSizes: [], engineMs: 0 };
  private readonly queue: Pending[] = [];
  /** session id → time (ms) of its latest decode step. */
  private readonly lastDecode = new Map<string, number>();
  private running = false;
  private splitsSinceBatch = 0;
  private readonly singleSamples = { seen: 0, recent: [] as number[] };
  private readonly batchSamples = { seen: 0, recent: [] as number[] };
  private wake: (() => void) | undefined;

  constructor(private readonly span: SpanExecutor, options: BatchSchedulerOptions = {}) {
    this.maxBatch = Math.max(1, Math.floor(options.maxBatch ?? DEFAULT_MAX_BATCH));
    this.windowMs = Math.max(0, options.windowMs ?? DEFAULT_BATCH_WINDOW_MS);
    this.activeMs = Math.max(0, options.activeMs ?? DEFAULT_BATCH_ACTIVE_MS);
  }

  /** Steps waiting for the engine. */
  get queued(): number {
    return this.queue.length;
  }

  /** Queues a validated step; resolves with its output hidden states. */
  submit(step: SpanStep): Promise<Float32Array> {
    const tokens = step.hidden.length / this.span.hiddenSize;
    return new Promise<Float32Array>((resolve, reject) => {
      this.queue.push({ step, tokens, resolve, reject });
      if (tokens === 1) this.lastDecode.set(step.sessionId, performance.now());
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
      if (!this.running) void this.pump();
    });
  }

  /** Stops counting a closed session as decoding. */
  forget(sessionId: string): void {
    this.lastDecode.delete(sessionId);
  }

  /** Rejects every queued step (shutdown). */
  drain(error: Error): void {
    for (const pending of this.queue.splice(0)) pending.reject(error);
    this.lastDecode.clear();
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const head = this.queue[0]!;
        let group: Pending[];
        if (head.tokens !== 1 || this.maxBatch === 1) {
          group = [this.queue.shift()!];
        } else {
          await this.gather();
          group = this.takeDecodes();
          if (group.length === 0) continue; // the queue changed while waiting (drained); look again
        }
        if (group.length === 1 && group[0]!.tokens > this.span.prefillChunkTokens) await this.executeInChunks(group[0]!);
        else await this.execute(group);
        // Let the replies go out and the steps that arrived during the (blocking) engine call come in.
        await yieldToIo();
      }
    } finally {
      this.running = false;
    }
  }

  private decodesQueued(): number {
    let n = 0;
    for (const pending of this.queue) if (pending.tokens === 1) n++;
    return n;
  }

  /** Sessions that decoded recently (and so will probably send another decode step soon). */
  private activeDecoders(now: number): number {
    let n = 0;
    for (const [id, at] of this.lastDecode) {
      if (now - at <= this.activeMs) n++;
      else this.lastDecode.delete(id);
    }
    return n;
  }

  /** Waits (at most windowMs) until the queue holds a decode step of every session that is decoding. */
  private async gather(): Promise<void> {
    if (this.windowMs <= 0) return;
    const start = performance.now();
    for (;;) {
      const now = performance.now();
      const target = Math.min(this.maxBatch, this.activeDecoders(now));
      const queued = this.decodesQueued();
      if (queued === 0 || queued >= target) return;
      // not worth waiting for a group that would run as single calls anyway
      if (this.cheaperAlone(target)) return;
      const left = this.windowMs - (now - start);
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = undefined;
          resolve();
        }, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private takeDecodes(): Pending[] {
    const group: Pending[] = [];
    for (let i = 0; i < this.queue.length && group.length < this.maxBatch; ) {
      if (this.queue[i]!.tokens === 1) group.push(this.queue.splice(i, 1)[0]!);
      else i++;
    }
    return group;
  }

  /**
   * True when one batched call is not estimated to save at least 25% over `n` single calls. Near break-even, single
   * calls win: they let one session's compute overlap the others' network and client time, which lock-step
   * batches do not.
   */
  private cheaperAlone(n: number): boolean {
    const { singleMs, batchMs } = this.stats;
    return n > 1 && singleMs !== undefined && batchMs !== undefined && batchMs > 0.75 * n * singleMs;
  }

  /** Records a call's duration; the first call of each kind (onnxruntime warm-up) is not counted. */
  private observe(kind: 'single' | 'batch', ms: number): void {
    const samples = kind === 'single' ? this.singleSamples : this.batchSamples;
    samples.seen++;
    if (samples.seen === 1) return;
    samples.recent.push(ms);
    if (samples.recent.length > 9) samples.recent.shift();
    const median = [...samples.recent].sort((a, b) => a - b)[samples.recent.length >> 1]!;
    if (kind === 'single') this.stats.singleMs = median;
    else this.stats.batchMs = median;
  }

  private async execute(group: Pending[]): Promise<void> {
    if (this.cheaperAlone(group.length) && ++this.splitsSinceBatch % 32 !== 0) {
      // cheaper as single calls (the padded batch graph costs more than it saves); every 32nd time the batch runs
      // anyway, so that its estimate follows the sessions' growing context
      for (const pending of group) await this.execute([pending]);
      return;
    }
    const started = performance.now();
    this.stats.engineCalls++;
    this.stats.groupSizes[group.length] = (this.stats.groupSizes[group.length] ?? 0) + 1;
    try {
      const outs = group.length === 1 ? [await this.span.step(group[0]!.step)] : await this.span.stepBatch(group.map((p) => p.step));
      const ms = performance.now() - started;
      if (group.length > 1) this.observe('batch', ms);
      else if (group[0]!.tokens === 1) this.observe('single', ms);
      this.account(group, started);
      group.forEach((pending, i) => pending.resolve(outs[i]!));
    } catch (error) {
      this.account([], started);
      if (group.length === 1) {
        group[0]!.reject(error);
        return;
      }
      // Isolate the failure: each step alone (the engine validated before touching any cache).
      for (const pending of group) {
        const again = performance.now();
        this.stats.engineCalls++;
        this.stats.groupSizes[1] = (this.stats.groupSizes[1] ?? 0) + 1;
        try {
          const out = await this.span.step(pending.step);
          this.account([pending], again);
          pending.resolve(out);
        } catch (single) {
          this.account([], again);
          pending.reject(single);
        }
      }
    }
  }

  /** Runs a long step chunk by chunk, with the decode steps queued meanwhile in between. */
  private async executeInChunks(pending: Pending): Promise<void> {
    const { step, tokens } = pending;
    const session = this.span.session(step.sessionId);
    const start = step.position ?? session?.position ?? 0;
    // a step that does not fit its session fails whole, in the engine's own checks, before any chunk runs
    if (!session || start > session.position || start + tokens > session.maxLength) return this.execute([pending]);
    const H = this.span.hiddenSize;
    const chunk = this.span.prefillChunkTokens;
    const out = new Float32Array(tokens * H);
    try {
      for (let t = 0; t < tokens; t += chunk) {
        if (t > 0) {
          await yieldToIo();
          const decodes = this.takeDecodes();
          if (decodes.length > 0) await this.execute(decodes);
        }
        const n = Math.min(chunk, tokens - t);
        const started = performance.now();
        this.stats.engineCalls++;
        this.stats.groupSizes[1] = (this.stats.groupSizes[1] ?? 0) + 1;
        try {
          out.set(await this.span.step({ sessionId: step.sessionId, hidden: step.hidden.subarray(t * H, (t + n) * H), position: start + t }), t * H);
        } finally {
          this.account([], started);
        }
      }
    } catch (error) {
      pending.reject(error);
      return;
    }
    this.stats.steps++;
    this.stats.tokens += tokens;
    pending.resolve(out);
  }

  private account(group: readonly Pending[], started: number): void {
    this.stats.engineMs += performance.now() - started;
    this.stats.steps += group.length;
    for (const pending of group) this.stats.tokens += pending.tokens;
  }
}
