/**
 * A multi-hop inference session at the hidden-state level: hidden states in, hidden states out, through a chain of
 * servers that together cover blocks [0, numBlocks).
 *
 * Failover. Every hop keeps every input it was sent (Petals keeps inputs per span). When a hop fails in any way (its
 * stream resets or ends, a step times out, the server answers with an error or with something malformed, or it dies),
 * the session
 *   1. bans the server (15 s, doubling on repeats; see bans.ts) and drops the hop;
 *   2. re-plans the failed hop's blocks, from its start block to any later boundary where an existing hop takes over
 *      (Dijkstra over the candidates plus the cost of the existing rest of the route), from the current view of the
 *      swarm (at most 60 s old; the failed server banned) on the first attempt and from a fresh lookup on later ones
 *      (or always fresh, with failoverRecords: 'fresh');
 *   3. opens sessions on the replacement server(s) and REPLAYS the failed hop's history through them, step by step
 *      exactly as it was originally sent (same chunking: the prompt in prefill chunks, then each token), pipelined, followed
 *      by the step that was in flight. The replacements' outputs then equal the originals bit for bit, because the
 *      engine is deterministic for equal inputs and equal step shapes. (Replaying everything as one prefill, as Petals
 *      does, would take one engine call instead of n, but a prefill of n tokens does not round the same way as n
 *      single-token steps: on stories260K the hidden states differ by ~4e-6, which can change a sampled token.);
 *   4. checks that the replayed outputs equal what the next existing hop received before. Where they differ (a
 *      replacement on another engine rounds differently; stats.replayMismatches counts it), that hop is rewound to
 *      the first differing step and replayed with the new inputs, and so on down the route, so no cache is left
 *      holding states the current route would not compute (a hop failing meanwhile: ReplayDivergedError). Then it
 *      replaces the hop(s) and continues the step from there.
 * Forwarding. Each hop is opened naming the previous hop as its `upstream`; a step then goes to the first hop of a
 * run of such hops naming the rest (`next`), each server pushes its output to the next one, and every hop answers the
 * client on its own stream, so a token costs one pass through the chain and the client still holds every hop's
 * output (its history, for replay). When the chain breaks (a push not accepted, a hop failing), the expectations past
 * the break are cancelled and the step goes on hop by hop from there through the failover above; hops whose
 * upstream changed in a failover are stepped hop by hop from then on. Outputs are the same bytes either way.
 * Attribution. `usage()` lists every server that computed blocks of this session and for how many tokens, prompt
 * and generated apart. A failed server keeps the tokens it served before failing; its replacement's replay of the
 * history is counted as `replayedTokens`, apart from what it serves afterwards.
 *
 * Recovery is bounded: at most `maxRetries` attempts and `failoverDeadlineMs` per step, after which the step fails
 * with SwarmUnavailableError carrying every failure as its cause chain.
 */
import { DEFAULT_PREFILL_CHUNK_TOKENS } from '../engine/defaults.js';
import type { ServerUsage } from '../inference/language-model.js';
import { SwarmTimeoutError } from '../swarm/errors.js';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import { MAX_FORWARD_HOPS, type Codec } from '../wire/messages.js';
import { BanList } from './bans.js';
import { LocalEncodingError, NoRouteError, RemoteSpanError, ReplayDivergedError, SessionClosedError, SwarmUnavailableError, shortPeer } from './errors.js';
import { ServerMeasurements } from './measurements.js';
import { hopCostMs, planRoute, recordOf, type CostModel, type PlannerRecord, type RecordLike, type Route } from './route-planner.js';
import type { LaneDialer } from '../swarm/lanes.js';
import { openRemoteSpan, type DialerNode, type Expectation, type HopResult, type HopTransport, type RemoteSpan, type StepInput } from './remote-span.js';
import type { SpotChecker } from './spot-check.js';

/** Where a session gets server records and round-trip times from (a registry view; tests may pass a fixed list). */
export interface RouteSource {
  /** Records of the model's servers. `fresh` asks for a new lookup rather than a cached view (used on failover). */
  records(options?: { fresh?: boolean }): Promise<readonly RecordLike[]>;
  /** Measured round-trip times (ms) by peer id. */
  rttMs?(): ReadonlyMap<string, number>;
}

export interface SwarmSessionOptions {
  readonly node: DialerNode;
  /** Direct lanes to servers (the node's), tried before libp2p streams. */
  readonly lanes?: LaneDialer;
  readonly source: RouteSource;
  readonly numBlocks: number;
  readonly hiddenSize: number;
  /** Tokens the session may hold; every server reserves cache for this many. */
  readonly maxLength: number;
  /** Ban list shared across sessions (default: a private one). */
  readonly bans?: BanList;
  /** Hidden-state codec on the wire (default 'f32'). */
  readonly codec?: Codec;
  /** Per-step reply timeout (ms). Default 30 000. */
  readonly stepTimeoutMs?: number;
  /** Dial + open timeout per hop (ms). Default 10 000. */
  readonly openTimeoutMs?: number;
  /** Recovery attempts per step (and for opening) before giving up. Default 5. */
  readonly maxRetries?: number;
  /** Time budget for recovering one step, or for opening (ms). Default 60 000. */
  readonly failoverDeadlineMs?: number;
  /**
   * Which records the first recovery attempt plans from. 'cached-first' (default): the source's current view (a
   * SwarmDirectory re-looks up when it is older than its refresh period, 60 s), with the failed server banned; if
   * that attempt fails (say a cached replacement is gone too), later attempts wait for fresh records. 'fresh': every
   * attempt waits for a fresh lookup (a DHT walk: hundreds of ms, measured 260–900 ms in-process).
   */
  readonly failoverRecords?: 'cached-first' | 'fresh';
  /**
   * A step of more tokens is sent as several steps of at most this many (default DEFAULT_PREFILL_CHUNK_TOKENS), so it
   * stays within servers' step cap and bounded attention memory; history, and so replay, keeps those chunks.
   */
  readonly prefillChunkTokens?: number;
  /** Steps in flight while replaying history onto a replacement. Default 16. */
  readonly replayWindow?: number;
  /** Route cost parameters. */
  readonly cost?: CostModel;
  /**
   * What this client measured about servers (step latencies, cache answers), shared across sessions: planning uses
   * it in place of the records' throughput, load and cache claims once a server has been measured. Default: a
   * private one.
   */
  readonly measurements?: ServerMeasurements;
  /** Chain steps through servers that forward (default true); false: always one round trip per hop. */
  readonly forwarding?: boolean;
  /** Servers accept sub-ranges of their spans (default false). */
  readonly subSpans?: boolean;
  /** Aborts the session: steps in flight fail with the abort's reason. */
  readonly signal?: AbortSignal;
  readonly logger?: ComponentLogger;
  /** Route, failures, bans and recoveries as they happen (RemoteModel re-emits them as typed events). */
  readonly onEvent?: (event: SessionEvent) => void;
  /** Offered every hop's history when the session closes (it checks a fraction of them; client/spot-check.ts). */
  readonly spotChecker?: Pick<SpotChecker, 'consider'>;
}

export type SessionEvent =
  | { readonly type: 'route'; readonly hops: readonly HopInfo[] }
  | { readonly type: 'failure'; readonly peerId: string; readonly error: RemoteSpanError; readonly banMs: number }
  | { readonly type: 'ban'; readonly peerId: string; readonly ms: number }
  | { readonly type: 'recovered'; readonly recovery: RecoveryInfo };

export interface HopInfo {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  /** What carries the steps: a direct lane (swarm/lanes.ts) or a libp2p stream. */
  readonly transport: HopTransport;
}

export interface RecoveryInfo {
  /** Server(s) that failed (in the order the attempts saw them). */
  readonly failed: readonly string[];
  /** Blocks re-planned: from the failed hop's start to where the existing route took over. */
  readonly start: number;
  readonly end: number;
  readonly replacements: readonly HopInfo[];
  /** Steps replayed onto each replacement (history + the step in flight). */
  readonly replayedSteps: number;
  /** From catching the failure to having the in-flight step's output at the end of the re-planned blocks (ms). */
  readonly ms: number;
  /** Of `ms`: looking up records and planning, opening the replacement sessions, replaying (last attempt). */
  readonly lookupMs: number;
  readonly openMs: number;
  readonly replayMs: number;
  readonly attempts: number;
}

export interface SessionStats {
  /** Steps completed. */
  steps: number;
  /** Hop failures seen (each bans a server). */
  failures: number;
  /** Successful recoveries. */
  failovers: number;
  /** Steps replayed onto replacements, summed over replacement hops. */
  replayedSteps: number;
  /** Downstream hops whose recorded inputs differed from a replacement's replayed outputs (0 with identical engines). */
  replayMismatches: number;
  /** Downstream hops rewound and replayed because of such a difference. */
  downstreamReplays: number;
  /** Every server banned by this session, in order. */
  banned: string[];
  recoveries: RecoveryInfo[];
  /** Steps (or parts of steps) sent as one forwarded chain of more than one hop. */
  chainedSteps: number;
  /** Forwarded chains that broke (a push not accepted or a hop failing) and went on hop by hop. */
  brokenChains: number;
  /** Per hop of the latest step, in route order: when its reply arrived and what its server reported. */
  lastStep: HopTiming[];
}

export interface HopTiming {
  readonly peerId: string;
  /** From the step's start (the first hop's send) to this hop's reply (ms). */
  readonly arrivedMs: number;
  /** From this hop's input being ready at the client (hop by hop) or its chain being sent (forwarded) to its reply. */
  readonly waitedMs: number;
  /** The server's own figures: queue + engine, and from reading the step to replying (ms). */
  readonly computeMs?: number;
  readonly serverMs?: number;
  /** Whether the step reached this hop pushed by the previous one. */
  readonly pushed: boolean;
}

interface Hop {
  readonly span: RemoteSpan;
  readonly record: PlannerRecord;
  readonly start: number;
  readonly end: number;
  /** Every input this hop processed, in order. */
  readonly inputs: StepInput[];
  /** This hop's line of the session's usage. */
  readonly usage: ServerUsage;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class SwarmInferenceSession {
  readonly maxLength: number;
  readonly stats: SessionStats = { steps: 0, failures: 0, failovers: 0, replayedSteps: 0, replayMismatches: 0, downstreamReplays: 0, banned: [], recoveries: [], chainedSteps: 0, brokenChains: 0, lastStep: [] };
  private readonly bans: BanList;
  private readonly measurements: ServerMeasurements;
  private readonly maxRetries: number;
  private readonly deadlineMs: number;
  private readonly log: Logger;
  private readonly usages: ServerUsage[] = [];
  /** Whether the step being run carries sampled ids (for attribution). */
  private stepSampled = false;
  private hops: Hop[] = [];
  private currentPosition = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private broken?: unknown;

  private constructor(private readonly options: SwarmSessionOptions) {
    this.maxLength = options.maxLength;
    this.bans = options.bans ?? new BanList();
    this.measurements = options.measurements ?? new ServerMeasurements();
    this.maxRetries = options.maxRetries ?? 5;
    this.deadlineMs = options.failoverDeadlineMs ?? 60_000;
    this.log = (options.logger ?? silentLogger).forComponent('corolla:client:session');
  }

  /** Plans a route over fresh records and opens a session on every hop (retrying on failures like a failover). */
  static async open(options: SwarmSessionOptions): Promise<SwarmInferenceSession> {
    if (!Number.isInteger(options.maxLength) || options.maxLength < 1) throw new RangeError(`maxLength must be a positive integer, got ${options.maxLength}`);
    const session = new SwarmInferenceSession(options);
    const started = performance.now();
    const failures: unknown[] = [];
    try {
      await session.rebuild(0, 0, [], failures, started, []);
    } catch (error) {
      await session.close();
      throw error;
    }
    return session;
  }

  /** Tokens processed so far: the position of the next step's first token. */
  get position(): number {
    return this.currentPosition;
  }

  /** The current chain of hops. */
  get route(): HopInfo[] {
    return this.hops.map(({ span, start, end }) => ({ peerId: span.peerId, start, end, transport: span.transport }));
  }

  /**
   * Pushes hidden states [tokens, hidden] of the next `tokens` positions through every hop and returns the output
   * of the last block, [tokens, hidden]. Fails over transparently; throws SwarmUnavailableError when it cannot.
   */
  step(hidden: Float32Array, tokens: number, options: { sampled?: boolean } = {}): Promise<Float32Array> {
    const run = this.queue.then(async () => {
      this.stepSampled = options.sampled === true;
      const chunk = this.options.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS;
      if (tokens <= chunk) return this.runStep(hidden, tokens);
      // a malformed or too long step fails whole, with runStep's reason, before any chunk is sent
      if (hidden.length !== tokens * this.options.hiddenSize || this.currentPosition + tokens > this.maxLength) return this.runStep(hidden, tokens);
      const width = this.options.hiddenSize;
      const out = new Float32Array(hidden.length);
      for (let t = 0; t < tokens; t += chunk) {
        const n = Math.min(chunk, tokens - t);
        out.set(await this.runStep(hidden.subarray(t * width, (t + n) * width), n), t * width);
      }
      return out;
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Forgets the tokens from `position` on (speculative decoding's rejected proposals). Nothing is sent: the next
   * step carries the lower position, and each server rewinds its cache before running it (as it does for replay).
   */
  rewind(position: number): Promise<void> {
    const run = this.queue.then(() => {
      if (this.closed) throw new SessionClosedError();
      if (!Number.isInteger(position) || position < 0 || position > this.currentPosition) {
        throw new RangeError(`cannot rewind to ${position}: the session holds ${this.currentPosition} tokens`);
      }
      this.currentPosition = position;
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Which server computed which blocks for how many tokens, in the order the servers joined the session. */
  usage(): ServerUsage[] {
    return this.usages.map((entry) => ({ ...entry, blocks: { ...entry.blocks } }));
  }

  /** Closes every hop (best effort). Later steps throw SessionClosedError. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => {});
    const hops = this.hops;
    this.hops = [];
    // A server that served a whole session without failing is forgiven earlier strikes (so a flaky server that
    // fails every few steps keeps doubling its ban).
    for (const hop of hops) if (hop.span.usable && !this.broken) this.bans.succeeded(hop.span.peerId);
    const { spotChecker, hiddenSize, codec = 'f32' } = this.options;
    if (spotChecker && !this.broken) for (const hop of hops) spotChecker.consider({ span: hop.span, record: hop.record, inputs: hop.inputs, hiddenSize }, codec);
    await Promise.all(hops.map((hop) => hop.span.close()));
  }

  private async runStep(hidden: Float32Array, tokens: number): Promise<Float32Array> {
    if (this.closed) throw new SessionClosedError();
    if (this.broken) throw new SessionClosedError('the inference session failed earlier and cannot continue', { cause: this.broken });
    if (!Number.isInteger(tokens) || tokens < 1 || hidden.length !== tokens * this.options.hiddenSize) {
      throw new RangeError(`a step of ${tokens} tokens needs ${tokens * this.options.hiddenSize} values, got ${hidden.length}`);
    }
    const position = this.currentPosition;
    if (position + tokens > this.maxLength) throw new RangeError(`step of ${tokens} tokens at position ${position} exceeds the session's maxLength ${this.maxLength}`);
    let input: StepInput = { position, tokens, hidden };
    const failures: unknown[] = [];
    const failed: string[] = [];
    const timings: HopTiming[] = [];
    const stepStarted = performance.now();
    let started = 0;
    let index = 0;
    /** The hop the step reaches next was pushed to (its reply is the next expectation's). */
    let expected: Expectation[] = [];
    let chainSent = 0;
    while (index < this.hops.length) {
      const hop = this.hops[index]!;
      try {
        const sent = performance.now();
        let result: HopResult;
        const pushed = expected.length > 0;
        if (pushed) {
          result = await expected.shift()!.result;
          hop.span.verifyPushed(input, result);
        } else {
          const chain = this.chainFrom(index);
          if (chain.length > 0) {
            expected = chain.map((next) => next.span.expect(position, tokens));
            chainSent = sent;
            this.stats.chainedSteps++;
            result = await hop.span.stepChained(input, expected.map((e) => e.target));
          } else {
            result = await hop.span.run(input);
          }
        }
        const now = performance.now();
        timings.push({ peerId: hop.span.peerId, arrivedMs: now - stepStarted, waitedMs: now - (pushed ? chainSent : sent), computeMs: result.computeMs, serverMs: result.serverMs, pushed });
        // Our own timing of the server, which planning trusts over its record once it has it.
        if (tokens === 1 && !pushed && expected.length === 0) this.measurements.recordStep(hop.span.peerId, hop.end - hop.start, now - sent);
        hop.inputs.push(input);
        this.count(hop.usage, tokens);
        input = { position, tokens, hidden: result.output };
        index++;
        if (expected.length > 0 && !result.forwarded) this.breakChain(expected.splice(0));
      } catch (error) {
        this.breakChain(expected.splice(0));
        // Our own step could not be sent (a non-finite value, a frame over our limit): nobody is blamed, and when
        // nothing reached the hop the session is intact (this step simply did not happen).
        if (error instanceof LocalEncodingError && hop.span.usable && index === 0) throw error;
        if (!(error instanceof RemoteSpanError) || error.failure === 'aborted') {
          this.broken = error;
          throw error;
        }
        if (failures.length === 0) started = performance.now();
        failures.push(error);
        failed.push(hop.span.peerId);
        this.noteFailure(error);
        hop.usage.failed = true;
        this.hops.splice(index, 1);
        hop.span.abort('failed');
        try {
          const result = await this.rebuild(index, hop.start, [...hop.inputs, input], failures, started, failed, hop.record.engine);
          index = result.nextIndex;
          input = result.output!;
        } catch (fatal) {
          this.broken = fatal;
          throw fatal;
        }
      }
    }
    this.stats.lastStep = timings;
    this.currentPosition = position + tokens;
    this.stats.steps++;
    return input.hidden;
  }

  /**
   * The hops after hops[index] that a step sent to hops[index] can be pushed through: each one opened naming the
   * one before it as its upstream, all of them forwarding servers.
   */
  private chainFrom(index: number): Hop[] {
    const chain: Hop[] = [];
    if (this.options.forwarding === false || !this.hops[index]!.span.forwarding) return chain;
    for (let k = index + 1; k < this.hops.length && chain.length < MAX_FORWARD_HOPS; k++) {
      const hop = this.hops[k]!;
      if (!hop.span.forwarding || !hop.span.usable || hop.span.upstream !== this.hops[k - 1]!.span.peerId) break;
      chain.push(hop);
    }
    return chain;
  }

  /** Gives up on the rest of a forwarded chain: the step goes on from there hop by hop. */
  private breakChain(expectations: Expectation[]): void {
    if (expectations.length === 0) return;
    this.stats.brokenChains++;
    for (const expectation of expectations) expectation.cancel();
  }

  /**
   * Makes the hops from `from` on consistent with `inputs` (the steps already processed, as the new upstream hop
   * produced them): finds the first step whose input differs from what hops[from] received, rewinds that hop to it
   * and replays the rest, then does the same one hop further with the new outputs, until the outputs agree again or
   * the route ends. A hop that fails here ends the session with ReplayDivergedError (its cache is half-rewritten).
   */
  private async rewindDownstream(from: number, inputs: readonly StepInput[], deadline: number): Promise<void> {
    // changed[k] is the new input of step offset + k for hops[h].
    let changed = inputs;
    let offset = 0;
    for (let h = from; h < this.hops.length; h++) {
      const hop = this.hops[h]!;
      const k = changed.findIndex((step, i) => !sameFloats(step.hidden, hop.inputs[offset + i]!.hidden));
      if (k < 0) return;
      const first = offset + k;
      const tail = changed.slice(k);
      this.stats.replayMismatches++;
      this.log(`replayed output of step ${first} differs from what ${shortPeer(hop.span.peerId)} received: rewinding it and replaying ${tail.length} steps`);
      let outputs: Float32Array[];
      try {
        outputs = await hop.span.replay(tail, { window: this.options.replayWindow, deadline });
      } catch (error) {
        throw new ReplayDivergedError(hop.span.peerId, hop.start, hop.end, error);
      }
      hop.inputs.splice(first, tail.length, ...tail);
      hop.usage.replayedTokens += tail.reduce((sum, step) => sum + step.tokens, 0);
      this.stats.replayedSteps += tail.length;
      this.stats.downstreamReplays++;
      changed = tail.map((step, i) => ({ position: step.position, tokens: step.tokens, hidden: outputs[i]! }));
      offset = first;
    }
  }

  private count(usage: ServerUsage, tokens: number): void {
    if (this.stepSampled) usage.generatedTokens += tokens;
    else usage.promptTokens += tokens;
  }

  private noteFailure(error: RemoteSpanError): void {
    this.stats.failures++;
    const ms = this.bans.ban(error.peerId, error.message);
    this.stats.banned.push(error.peerId);
    this.options.onEvent?.({ type: 'failure', peerId: error.peerId, error, banMs: ms });
    this.options.onEvent?.({ type: 'ban', peerId: error.peerId, ms });
    this.log(`hop failed, banned ${shortPeer(error.peerId)} for ${ms} ms: ${error.message}`);
  }

  /**
   * Replaces the blocks from `start` (where hops[index] must now begin, the failed hop removed) up to a boundary
   * where an existing hop takes over, replaying `history` through the new hops. Returns the index of the first hop
   * after the new ones and the output of `history`'s last step at that boundary.
   */
  private async rebuild(
    index: number,
    start: number,
    history: StepInput[],
    failures: unknown[],
    started: number,
    failed: string[],
    /** The failed hop's engine fingerprint: replacements with the same one replay bit-identically. */
    preferEngine?: string,
  ): Promise<{ nextIndex: number; output?: StepInput }> {
    const { numBlocks } = this.options;
    const deadline = started + this.deadlineMs;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new SessionClosedError();
      const now = performance.now();
      if (attempt > this.maxRetries + (history.length === 0 ? 1 : 0) || now >= deadline) {
        const what = history.length === 0 && this.hops.length === 0 && index === 0 ? 'open an inference session' : `recover blocks [${start}, …)`;
        throw new SwarmUnavailableError(
          `could not ${what} after ${attempt - 1} attempt${attempt === 2 ? '' : 's'} in ${Math.round(now - started)} ms` +
            (failures.length > 0 ? `; last failure: ${(failures[failures.length - 1] as Error)?.message ?? String(failures[failures.length - 1])}` : ''),
          { failures: [...failures], elapsedMs: now - started },
        );
      }
      // Where the existing route can take over, and what the rest of it costs from there.
      const downstream = this.hops.slice(index);
      const ends = [...downstream.map((hop) => hop.start), numBlocks];
      const rtt = this.options.source.rttMs?.();
      const endCostMs = new Map<number, number>();
      let rest = 0;
      endCostMs.set(numBlocks, 0);
      for (let j = downstream.length - 1; j >= 0; j--) {
        const hop = downstream[j]!;
        // An existing hop already holds our cache, and the load its record shows includes our own session: cost it
        // unloaded, and 10% cheaper still, so that a healthy hop is only swapped for a clearly better one (a swap
        // costs a replay of its history).
        // Costed by the better of its record and our measurements, as the candidates are: a fresh session on the same
        // server must never look cheaper than the one we hold.
        const costOf = (record: PlannerRecord) => {
          const idle = { ...record, load: { activeSessions: 0, queuedSteps: 0 }, cacheTokensLeft: Number.MAX_SAFE_INTEGER };
          return hopCostMs(idle, hop.start, hop.end, { ...this.options.cost, rttMs: rtt, maxLength: this.maxLength });
        };
        rest += 0.9 * Math.min(costOf(hop.record), costOf(this.measurements.adjust(hop.record)));
        endCostMs.set(hop.start, rest);
      }

      let route: Route;
      const lookupStarted = performance.now();
      try {
        // A lookup may be slow while the DHT still lists dead peers; never let it run past the deadline.
        const fresh = attempt > 1 || (history.length > 0 && this.options.failoverRecords === 'fresh');
        const announced = await withTimeout(
          this.options.source.records({ fresh }),
          Math.max(1, deadline - performance.now()),
          () => new SwarmTimeoutError(`looking up servers took longer than the ${this.deadlineMs} ms recovery budget`),
        );
        // A record's throughput, load and cache figures are its claims: once we have measured a server, ours win.
        const records = announced.map((value) => this.measurements.adjust(recordOf(value)));
        const plan = (banned?: (peerId: string) => boolean) =>
          planRoute(records, {
            ...this.options.cost,
            numBlocks,
            start,
            end: ends,
            endCostMs,
            maxLength: this.maxLength,
            banned,
            rttMs: rtt,
            subSpans: this.options.subSpans,
            preferEngine,
          });
        try {
          route = plan(this.bans.predicate);
        } catch (error) {
          // A ban is a preference, not a verdict: a server can be banned for a transient fault (a dropped connection).
          // When only banned servers can cover the blocks, try them again (after a backoff) rather than give up.
          if (!(error instanceof NoRouteError) || !error.excluded.some((entry) => entry.reason === 'banned')) throw error;
          route = plan(undefined);
          failures.push(error);
          const wait = Math.min(Math.max(0, deadline - performance.now()), 250 * 2 ** (attempt - 1));
          this.log(`only banned servers can serve blocks [${start}, ${route.end}); retrying them in ${Math.round(wait)} ms`);
          await sleep(wait);
        }
      } catch (error) {
        failures.push(error);
        if (!(error instanceof NoRouteError)) this.log(`route lookup failed: ${(error as Error)?.message ?? String(error)}`);
        // Servers may be joining or bans expiring: wait a little (within the deadline) and look again.
        const wait = Math.min(Math.max(0, deadline - performance.now()), 250 * 2 ** (attempt - 1));
        await sleep(wait);
        continue;
      }

      const openStarted = performance.now();
      let replayStarted = openStarted;
      let opens: Promise<RemoteSpan>[] = [];
      try {
        // each new hop accepts pushes from the hop before it: the previous new one, or the existing hop it follows
        const upstreamOf = (i: number) => (i > 0 ? route.hops[i - 1]!.peerId : this.hops[index - 1]?.span.peerId);
        opens = route.hops.map((hop, i) =>
          openRemoteSpan(
            this.options.node,
            { peerId: hop.peerId, addrs: hop.record.addrs },
            { maxLength: this.maxLength, start: hop.start, end: hop.end, hiddenSize: this.options.hiddenSize, ...(this.options.forwarding !== false && upstreamOf(i) ? { upstream: upstreamOf(i) } : {}) },
            {
              codec: this.options.codec,
              stepTimeoutMs: this.options.stepTimeoutMs,
              // opening and replaying count against the recovery deadline
              openTimeoutMs: Math.max(1, Math.min(this.options.openTimeoutMs ?? 10_000, deadline - performance.now())),
              signal: this.options.signal,
              lanes: this.options.lanes,
            },
          ),
        );
        const spans = await Promise.all(opens);
        // The server answered with what is left after reserving our session; what it had for us is that plus ours.
        for (const span of spans) this.measurements.recordOpen(span.peerId, span.cacheTokensLeft + span.maxLength);
        replayStarted = performance.now();
        const newHops: Hop[] = [];
        let steps = history;
        for (const [i, span] of spans.entries()) {
          const outputs = steps.length > 0 ? await span.replay(steps, { window: this.options.replayWindow, deadline }) : [];
          const usage: ServerUsage = { peerId: span.peerId, blocks: { start: span.start, end: span.end }, promptTokens: 0, generatedTokens: 0, replayedTokens: 0, failed: false };
          newHops.push({ span, record: route.hops[i]!.record, start: span.start, end: span.end, inputs: [...steps], usage });
          this.stats.replayedSteps += steps.length;
          steps = steps.map((step, k) => ({ position: step.position, tokens: step.tokens, hidden: outputs[k]! }));
        }

        // The new hops end where hops[j] begins (or at the last block). Its history must equal what we just
        // replayed, minus the in-flight step it has not seen yet.
        const j = index + downstream.findIndex((hop) => hop.start === route.end);
        const takeover = route.end === numBlocks ? this.hops.length : j;
        const dropped = this.hops.splice(index, takeover - index, ...newHops);
        for (const hop of dropped) void hop.span.close();
        // Hops downstream computed their caches from the failed server's outputs; where the replacement's differ
        // (another backend rounds differently), they are rewound and replayed too, never left on a stale cache.
        if (index + newHops.length < this.hops.length) await this.rewindDownstream(index + newHops.length, steps.slice(0, -1), deadline);
        // History replayed onto the new hops is counted apart; the step in flight (history's last) is theirs.
        const inFlight = history.at(-1)?.tokens ?? 0;
        const replayed = history.reduce((sum, step) => sum + step.tokens, 0) - inFlight;
        for (const hop of newHops) {
          hop.usage.replayedTokens = replayed;
          this.count(hop.usage, inFlight);
          this.usages.push(hop.usage);
        }

        if (history.length > 0 || failures.length > 0) {
          const recovery: RecoveryInfo = {
            failed: [...failed],
            start,
            end: route.end,
            replacements: newHops.map(({ span, start: s, end: e }) => ({ peerId: span.peerId, start: s, end: e, transport: span.transport })),
            replayedSteps: history.length,
            ms: performance.now() - started,
            lookupMs: openStarted - lookupStarted,
            openMs: replayStarted - openStarted,
            replayMs: performance.now() - replayStarted,
            attempts: attempt,
          };
          if (history.length > 0) {
            this.stats.failovers++;
            this.stats.recoveries.push(recovery);
            this.options.onEvent?.({ type: 'recovered', recovery });
          }
          this.log(`recovered blocks [${start}, ${route.end}) on ${recovery.replacements.map((h) => `[${h.start},${h.end}) ${shortPeer(h.peerId)}`).join(', ')} in ${recovery.ms.toFixed(1)} ms (${history.length} steps replayed)`);
        }
        this.options.onEvent?.({ type: 'route', hops: this.route });
        return { nextIndex: index + newHops.length, output: steps[steps.length - 1] };
      } catch (error) {
        // Every session this attempt opened is closed, including those whose open completes only after another
        // open failed (Promise.all does not wait for them); none is left holding cache on its server.
        for (const open of opens) open.then((span) => void span.close(), () => {});
        if (!(error instanceof RemoteSpanError) || error.failure === 'aborted') throw error;
        failures.push(error);
        failed.push(error.peerId);
        this.noteFailure(error);
      }
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(error()), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (failure: unknown) => (clearTimeout(timer), reject(failure)),
    );
  });
}

function sameFloats(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
