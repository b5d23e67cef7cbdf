/**
 * Batching across clients. Every step of every session on this server goes through one scheduler, which makes
 * the engine calls:
 *   - a multi-token step (prefill, replay) runs alone;
 *   - single-token decode steps of different sessions run together as ONE `span.stepBatch` call of up to
 *     `maxBatch` steps.
 * onnxruntime-node computes on the main thread, so while one engine call runs, the steps that arrive meanwhile
 * queue up in the socket; after each call the scheduler yields to I/O once (setImmediate) and then takes whatever
 * is queued. When other sessions that are decoding may send their next decode step within `windowMs` (half of
 * their own step interval after their latest step), it waits for them, and stops waiting as soon as they are all
 * in. A session counts as decoding for `activeMs` after its latest decode step, or for twice its own
 * latest interval when that is longer (up to MAX_ACTIVE_FACTOR × activeMs): through several hops, or on a loaded
 * machine, a session comes back to a server less often than every `activeMs`, and its step must still be waited
 * for, or the batches fall apart into ones and twos. A lone client never waits, nor does a fast one for a slow
 * one; several clients in lock step fill whole batches.
 *
 * A batched call runs on its steps' rows only (the engine leaves the graph's other slots empty), so it never costs
 * more than the same steps one by one (on 6 SmolLM2-135M q8_0 layers: 2 steps 1.5×, 8 steps 2.5× one step), and
 * every group of decode steps runs as one call.
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
import { DEFAULT_BATCH_ACTIVE_MS, DEFAULT_BATCH_WINDOW_MS, DEFAULT_MAX_BATCH, MAX_ACTIVE_FACTOR } from './defaults.js';

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
  /** session id → time (ms) of its latest decode step, the interval before it, and how long it counts as decoding. */
  private readonly lastDecode = new Map<string, { at: number; interval: number; activeFor: number }>();
  private running = false;
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
      if (tokens === 1) this.noteDecode(step.sessionId);
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
      if (!this.running) void this.pump();
    });
  }

  private noteDecode(sessionId: string): void {
    const now = performance.now();
    const previous = this.lastDecode.get(sessionId);
    const interval = previous === undefined ? 0 : now - previous.at;
    this.lastDecode.set(sessionId, { at: now, interval, activeFor: Math.min(MAX_ACTIVE_FACTOR * this.activeMs, Math.max(this.activeMs, 2 * interval)) });
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

  /** Sessions with a decode step in the queue. */
  private queuedDecoders(): Set<string> {
    const ids = new Set<string>();
    for (const pending of this.queue) if (pending.tokens === 1) ids.add(pending.step.sessionId);
    return ids;
  }

  /**
   * Whether a session that is decoding, and not queued, may send its next decode step by `deadline`: once half its
   * latest interval has passed since its latest step (sessions in lock step are then all expected, even when this
   * round runs faster than the last). A session that steps much more slowly than the others is not waited for
   * until its step is near.
   */
  private expectsDecode(now: number, deadline: number, queued: ReadonlySet<string>): boolean {
    let expected = false;
    for (const [id, { at, interval, activeFor }] of this.lastDecode) {
      if (queued.has(id)) continue;
      // an entry outlives its active time a while, so that a session's interval is known at its next step
      if (now - at > 2 * MAX_ACTIVE_FACTOR * this.activeMs) this.lastDecode.delete(id);
      else if (now - at <= activeFor && at + interval / 2 <= deadline) expected = true;
    }
    return expected;
  }

  /** Waits (at most windowMs) until the queue holds a decode step of every session expected to send one meanwhile. */
  private async gather(): Promise<void> {
    if (this.windowMs <= 0) return;
    const deadline = performance.now() + this.windowMs;
    for (;;) {
      const now = performance.now();
      const queued = this.queuedDecoders();
      if (queued.size === 0 || queued.size >= this.maxBatch || !this.expectsDecode(now, deadline, queued)) return;
      const left = deadline - now;
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

  private async execute(group: Pending[]): Promise<void> {
    const started = performance.now();
    this.stats.engineCalls++;
    this.stats.groupSizes[group.length] = (this.stats.groupSizes[group.length] ?? 0) + 1;
    try {
      const outs = group.length === 1 ? [await this.span.step(group[0]!.step)] : await this.span.stepBatch(group.map((p) => p.step));
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
