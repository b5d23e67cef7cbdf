/**
 * One hop of a remote inference session: a stream to one block server on /corolla/block/1.0.0, carrying
 * `open`, then `step`s, then `close` (see src/wire/messages.ts).
 *
 * Every reply is checked against its request: the session id, step id and position must echo the request, the
 * tensor must be [tokens, hidden] in the negotiated codec, and every value finite. Anything else (an error reply,
 * a malformed or mismatched reply, a timeout, a reset or ended stream) is a RemoteSpanError; the hop is then dead
 * (its stream is aborted) and the session above fails over to another server.
 *
 * Forwarding: `stepChained` sends a step naming the later hops (`next`), and each later hop's reply is awaited with
 * `expect`, which reserves the step id that hop will echo. An expectation the session gives up on (the chain broke
 * before that hop) is cancelled without harm to the stream: a reply that still comes for it is recognised by its step
 * id and skipped, and a read in progress is kept for the next request rather than cut mid-frame.
 */
import { randomBytes } from 'node:crypto';
import type { Libp2p } from '@libp2p/interface';
import { CorollaError } from '../errors.js';
import type { MessageChannel } from '../wire/channel.js';
import { dialChannel } from '../swarm/dial-channel.js';
import type { LaneDialer } from '../swarm/lanes.js';
import type { Codec, DecodedMessage, Message, NextHop } from '../wire/messages.js';
import { BLOCK_PROTOCOL, BLOCK_STREAMS_PER_PEER } from '../wire/protocols.js';
import { HistoryChain, asReceived, tensorDigest, verifyAttestation, type SignedStep } from '../wire/attestation.js';
import { DEFAULT_MAX_HIDDEN_MAGNITUDE } from './defaults.js';
import { LocalEncodingError, RemoteSpanError, type RemoteSpanFailure } from './errors.js';

/** What a hop needs of the libp2p node: dialing, and a peer store to learn addresses from records. */
export type DialerNode = Pick<Libp2p, 'dialProtocol' | 'peerStore'>;

export interface SpanTarget {
  readonly peerId: string;
  /** Addresses from the server's record, merged into the peer store before dialing. */
  readonly addrs?: readonly string[];
}

export interface RemoteSpanInit {
  /** Session id on this server (default: random). Ids are 1..128 of [A-Za-z0-9_-]. */
  readonly sessionId?: string;
  readonly maxLength: number;
  readonly start: number;
  readonly end: number;
  /** Hidden size of the model: every reply must be [tokens, hiddenSize]. */
  readonly hiddenSize: number;
  /** The previous hop's peer id: the one server allowed to push steps into this session (forwarding). */
  readonly upstream?: string;
  /** This server's addresses, passed on to the previous hop so that it can dial it to forward. */
  readonly addrs?: readonly string[];
}

export interface RemoteSpanOptions {
  /** Codec of hidden states in both directions: 'f32' (default, lossless), 'f16' or 'int8'. */
  readonly codec?: Codec;
  /** Longest wait for one step's reply (ms). Default 30 000. */
  readonly stepTimeoutMs?: number;
  /** Longest wait for dialing and the `opened` reply (ms). Default 10 000. */
  readonly openTimeoutMs?: number;
  /** Longest wait for `closed` on a graceful close (ms). Default 2 000. */
  readonly closeTimeoutMs?: number;
  /** Largest frame accepted (bytes). Default: the wire default (64 MiB). */
  readonly maxFrameBytes?: number;
  /** Aborts dialing, opening, and any step in flight. */
  readonly signal?: AbortSignal;
  /** Largest |value| accepted in a reply; a larger one is the replying server's fault. Default DEFAULT_MAX_HIDDEN_MAGNITUDE. */
  readonly maxHiddenMagnitude?: number;
  /** Whether a step reply without an attestation is the server's fault (default true; a bad one always is). */
  readonly requireAttestations?: boolean;
  /** Direct lanes (swarm/lanes.ts): tried first, with a libp2p stream as the fallback. */
  readonly lanes?: LaneDialer;
}

/** What carries a hop's steps. */
export type HopTransport = 'lane' | 'libp2p';

/** One step's signed reply as this hop received it: what a spot-check compares and the oracle is shown. */
export interface AttestedOutput extends SignedStep {
  readonly output: Float32Array;
}

/** One step's input: hidden states [tokens, hidden] for positions [position, position + tokens). */
export interface StepInput {
  readonly position: number;
  readonly tokens: number;
  readonly hidden: Float32Array;
}

/** One hop's answer to a step: its output, and what the server reported. */
export interface HopResult {
  readonly output: Float32Array;
  /** For a chained step: whether the server pushed its output on to the next hop. */
  readonly forwarded: boolean;
  /** The server's own time for the step (queue + engine) and from reading it to replying, when reported (ms). */
  readonly computeMs?: number;
  readonly serverMs?: number;
  /** The server's signature of the step (wire/attestation.ts), checked against its input and output. */
  readonly attestation?: string;
}

/** A reply the session waits for from a hop it did not send the step to (the previous hop pushed it there). */
export interface Expectation {
  /** What the previous hop needs to push the step here. */
  readonly target: NextHop;
  readonly result: Promise<HopResult>;
  /** Stops waiting: the step never reached this hop, or the session goes on without it. Harmless once settled. */
  cancel(): void;
}

/** Step ids given up on that a hop may still answer (bounded: a hop owes at most a few). */
const MAX_STALE_STEPS = 64;

/** A fresh session id: 16 random bytes, base64url (matches the wire's id pattern). */
export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}

const DEFAULTS = { stepTimeoutMs: 30_000, openTimeoutMs: 10_000, closeTimeoutMs: 2_000 };

/** Dials `target`, opens a session for blocks [start, end), and returns the open hop. Throws RemoteSpanError. */
export async function openRemoteSpan(node: DialerNode, target: SpanTarget, init: RemoteSpanInit, options: RemoteSpanOptions = {}): Promise<RemoteSpan> {
  const sessionId = init.sessionId ?? newSessionId();
  const codec = options.codec ?? 'f32';
  const openTimeoutMs = Math.max(1, Math.ceil(options.openTimeoutMs ?? DEFAULTS.openTimeoutMs));
  const fail = (failure: RemoteSpanFailure, message: string, cause?: unknown, serverCode?: string) =>
    new RemoteSpanError({ peerId: target.peerId, failure, start: init.start, end: init.end, serverCode }, message, { cause });
  const signal = options.signal ? AbortSignal.any([options.signal, AbortSignal.timeout(openTimeoutMs)]) : AbortSignal.timeout(openTimeoutMs);

  let channel: MessageChannel;
  let lane: boolean;
  try {
    // one stream per session: libp2p's default of 64 outbound streams per protocol would fail a gateway's 65th
    // session locally (and ban a healthy server for it); the server's per-peer quota is the same constant
    ({ channel, lane } = await dialChannel(node, target.peerId, BLOCK_PROTOCOL, {
      signal,
      addrs: target.addrs,
      lanes: options.lanes,
      maxFrameBytes: options.maxFrameBytes,
      maxOutboundStreams: BLOCK_STREAMS_PER_PEER,
    }));
  } catch (error) {
    throw fail(options.signal?.aborted ? 'aborted' : signal.aborted ? 'timeout' : 'dial', `cannot open a ${BLOCK_PROTOCOL} stream: ${messageOf(error)}`, error);
  }
  let reply: DecodedMessage;
  try {
    await channel.send({ type: 'open', sessionId, maxLength: init.maxLength, spanStart: init.start, spanEnd: init.end, codec, ...(init.upstream ? { upstream: init.upstream } : {}) }, undefined, { signal });
    reply = await channel.receive({ signal });
  } catch (error) {
    channel.abort(asError(error));
    const failure: RemoteSpanFailure = options.signal?.aborted ? 'aborted' : signal.aborted ? 'timeout' : isMalformed(error) ? 'malformed' : 'stream';
    throw fail(failure, `open failed: ${messageOf(error)}`, error);
  }
  const header = reply.header;
  if (header.type === 'error') {
    channel.abort(new Error('open refused'));
    throw fail('server', `open refused: ${header.code}: ${header.message}`, undefined, header.code);
  }
  if (header.type !== 'opened' || header.sessionId !== sessionId || header.position !== 0) {
    channel.abort(new Error('unexpected open reply'));
    throw fail('malformed', `expected opened {sessionId: ${sessionId}, position: 0}, got ${summarize(header)}`);
  }
  return new RemoteSpan(channel, target.peerId, sessionId, { ...init, addrs: init.addrs ?? target.addrs }, codec, header.cacheTokensLeft, options, header.forwarding === true, lane ? 'lane' : 'libp2p');
}

export class RemoteSpan {
  readonly peerId: string;
  readonly sessionId: string;
  readonly start: number;
  readonly end: number;
  readonly maxLength: number;
  readonly codec: Codec;
  /** Cache tokens the server reported left when the session opened. */
  readonly cacheTokensLeft: number;
  /** The peer allowed to push steps into this session, if one was named at open. */
  readonly upstream: string | undefined;
  /** The server accepts chained steps and pushes (it said so at open). */
  readonly forwarding: boolean;
  private readonly addrs: readonly string[] | undefined;
  /** A read of the next reply that a cancelled wait left running: the next wait takes it over. */
  private pendingRead: Promise<DecodedMessage> | undefined;
  private readonly stale = new Set<number>();
  private readonly hiddenSize: number;
  private readonly stepTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly signal?: AbortSignal;
  private readonly maxMagnitude: number;
  private readonly requireAttestations: boolean;
  private readonly history = new HistoryChain();
  /** Every step's signed reply, in the order received (a rewind appends the replayed steps again). */
  readonly attested: AttestedOutput[] = [];
  private nextStepId = 0;
  private currentPosition = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** The attestation checks not yet known to have passed, in step order (see verify). */
  private checks: Promise<void> = Promise.resolve();
  private failure?: RemoteSpanError;
  private closing = false;

  constructor(
    private readonly channel: MessageChannel,
    peerId: string,
    sessionId: string,
    init: RemoteSpanInit,
    codec: Codec,
    cacheTokensLeft: number,
    options: RemoteSpanOptions,
    forwarding = false,
    /** What carries the steps: a direct lane (swarm/lanes.ts) or a libp2p stream. */
    readonly transport: HopTransport = 'libp2p',
  ) {
    this.peerId = peerId;
    this.sessionId = sessionId;
    this.start = init.start;
    this.end = init.end;
    this.maxLength = init.maxLength;
    this.hiddenSize = init.hiddenSize;
    this.codec = codec;
    this.cacheTokensLeft = cacheTokensLeft;
    this.upstream = init.upstream;
    this.addrs = init.addrs;
    this.forwarding = forwarding;
    this.stepTimeoutMs = Math.max(1, Math.ceil(options.stepTimeoutMs ?? DEFAULTS.stepTimeoutMs));
    this.closeTimeoutMs = Math.max(1, Math.ceil(options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs));
    this.signal = options.signal;
    this.maxMagnitude = options.maxHiddenMagnitude ?? DEFAULT_MAX_HIDDEN_MAGNITUDE;
    this.requireAttestations = options.requireAttestations ?? true;
  }

  /** Tokens in the server's cache for this session, as far as the client knows. */
  get position(): number {
    return this.currentPosition;
  }

  /** False once the hop failed or was closed. */
  get usable(): boolean {
    return this.failure === undefined && !this.closing;
  }

  /** Runs one step and returns the output hidden states [tokens, hidden]. */
  step(input: StepInput): Promise<Float32Array> {
    return this.run(input).then((result) => result.output);
  }

  /** Runs one step; resolves with its output and the server's reported times. */
  run(input: StepInput): Promise<HopResult> {
    return this.serialize(async () => (await this.pipeline([input], 1, Infinity))[0]!);
  }

  /**
   * Runs one step and has the server push its output on to `next` (the later hops, whose replies come through their
   * own `expect`). Resolves with this hop's output and whether the push was accepted.
   */
  stepChained(input: StepInput, next: readonly NextHop[]): Promise<HopResult> {
    return this.serialize(async () => (await this.pipeline([input], 1, Infinity, next))[0]!);
  }

  /** Reserves the step id a previous hop will push a step under, and waits for this hop's reply to it. */
  expect(position: number, tokens: number): Expectation {
    const stepId = this.nextStepId++;
    const cancelled = new AbortController();
    const result = this.serialize(async () => {
      await this.checks.catch(() => {});
      if (this.failure) throw this.failure;
      if (this.closing) throw this.error('aborted', 'the hop is closed');
      cancelled.signal.throwIfAborted();
      const timeoutMs = this.stepTimeoutMs;
      const deadline = this.deadline(timeoutMs, cancelled.signal);
      try {
        const reply = await this.receiveReply(deadline.signal);
        const out = this.check(reply, { position, tokens, hidden: EMPTY }, stepId);
        this.currentPosition = position + tokens;
        return out;
      } catch (error) {
        if (cancelled.signal.aborted) throw error;
        this.failure = error instanceof RemoteSpanError ? error : this.classify(error, timeoutMs);
        this.channel.abort(asError(error));
        throw this.failure;
      } finally {
        deadline.clear();
      }
    });
    result.catch(() => {});
    const target: NextHop = { peerId: this.peerId, sessionId: this.sessionId, stepId, ...(this.addrs && this.addrs.length > 0 ? { addrs: this.addrs.slice(0, 8) } : {}) };
    return {
      target,
      result,
      cancel: () => {
        if (cancelled.signal.aborted) return;
        this.markStale(stepId);
        cancelled.abort(new Error('the chain broke before this hop'));
      },
    };
  }

  /**
   * Runs several steps in order, pipelined: up to `window` requests are in flight before their replies are read
   * (replies come back in request order). Used to replay history onto a replacement server. Each reply waits at
   * most the step timeout, and nothing waits past `deadline` (a performance.now() time), if given.
   */
  replay(inputs: readonly StepInput[], options: { window?: number; deadline?: number } = {}): Promise<Float32Array[]> {
    return this.serialize(async () => (await this.pipeline(inputs, Math.max(1, options.window ?? 16), options.deadline ?? Infinity)).map((result) => result.output));
  }

  /** Sends `close` and waits briefly for `closed`, then closes the stream. Never throws. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.queue.catch(() => {});
    if (this.failure) return;
    try {
      const signal = AbortSignal.timeout(this.closeTimeoutMs);
      await this.channel.send({ type: 'close', sessionId: this.sessionId }, undefined, { signal });
      await this.receiveReply(signal);
      await this.channel.close();
    } catch (error) {
      this.channel.abort(asError(error));
    }
  }

  /** Drops the hop at once: aborts the stream (the server ends the session). */
  abort(reason = 'aborted by the client'): void {
    if (!this.failure) this.failure = this.error('aborted', reason);
    this.channel.abort(new Error(reason));
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => {});
    return run;
  }

  private error(failure: RemoteSpanFailure, message: string, cause?: unknown, serverCode?: string): RemoteSpanError {
    return new RemoteSpanError({ peerId: this.peerId, failure, start: this.start, end: this.end, serverCode }, message, { cause });
  }

  private async pipeline(inputs: readonly StepInput[], window: number, deadline: number, next?: readonly NextHop[]): Promise<HopResult[]> {
    const timeout = () => Math.max(1, Math.ceil(Math.min(this.stepTimeoutMs, deadline - performance.now())));
    let timeoutMs = this.stepTimeoutMs;
    await this.checks.catch(() => {}); // a failed check of an earlier reply fails this hop (see verify)
    if (this.failure) throw this.failure;
    if (this.closing) throw this.error('aborted', 'the hop is closed');
    let expectedPosition = this.currentPosition;
    for (const input of inputs) {
      if (!Number.isInteger(input.tokens) || input.tokens < 1 || input.hidden.length !== input.tokens * this.hiddenSize) {
        throw new RangeError(`step of ${input.tokens} tokens needs ${input.tokens * this.hiddenSize} values, got ${input.hidden.length}`);
      }
      // A step may rewind (position below the cache's), never skip ahead.
      if (input.position > expectedPosition || input.position + input.tokens > this.maxLength) {
        throw new RangeError(`step at position ${input.position} (+${input.tokens}) does not fit a session at ${expectedPosition} of ${this.maxLength}`);
      }
      expectedPosition = input.position + input.tokens;
      // Our own bad tensor is our error: refuse it before anything is sent, so no server is blamed for choking on it.
      const bad = firstNonFinite(input.hidden);
      if (bad >= 0) throw new LocalEncodingError('TENSOR_NON_FINITE', `non-finite value ${input.hidden[bad]} at element ${bad} of our own hidden states`);
    }
    const outputs: HopResult[] = [];
    const stepIds: number[] = [];
    let sent = 0;
    try {
      while (outputs.length < inputs.length) {
        while (sent < inputs.length && sent - outputs.length < window) {
          const input = inputs[sent]!;
          const stepId = this.nextStepId++;
          stepIds.push(stepId);
          const deadline = this.deadline((timeoutMs = timeout()));
          await this.channel
            .send(
              { type: 'step', sessionId: this.sessionId, stepId, position: input.position, tokens: input.tokens, ...(next ? { next: [...next] } : {}) },
              { data: input.hidden, shape: [input.tokens, this.hiddenSize], dtype: this.codec },
              { signal: deadline.signal },
            )
            .catch((error: unknown) => {
              // Encoding fails before a byte is written (a frame over our own limit): our fault, not the server's.
              if (!isEncodingError(error)) throw error;
              throw new LocalEncodingError((error as CorollaError).code, messageOf(error), { cause: error });
            })
            .finally(deadline.clear);
          sent++;
        }
        const index = outputs.length;
        const deadline = this.deadline((timeoutMs = timeout()));
        const reply = await this.receiveReply(deadline.signal).finally(deadline.clear);
        const result = this.check(reply, inputs[index]!, stepIds[index]!);
        this.verify(result.attestation, inputs[index]!, result.output);
        outputs.push(result);
        this.currentPosition = inputs[index]!.position + inputs[index]!.tokens;
      }
      return outputs;
    } catch (error) {
      if (error instanceof LocalEncodingError) {
        // Nothing of the failed step was written. With no reply outstanding the hop is intact and stays usable;
        // otherwise it is dropped (without blaming the server: the failure is 'aborted').
        if (sent > outputs.length) this.abort(`our own step could not be encoded: ${error.message}`);
        throw error;
      }
      this.failure = error instanceof RemoteSpanError ? error : this.classify(error, timeoutMs);
      this.channel.abort(asError(error));
      throw this.failure;
    }
  }

  /** The next reply, skipping late replies to steps given up on; an aborted wait leaves its read to the next one. */
  private async receiveReply(signal: AbortSignal): Promise<DecodedMessage> {
    for (;;) {
      let read = this.pendingRead;
      if (!read) {
        read = this.channel.receive();
        read.catch(() => {});
        this.pendingRead = read;
      }
      let message: DecodedMessage;
      try {
        message = await raceAbort(read, signal);
      } catch (error) {
        if (!signal.aborted) this.pendingRead = undefined;
        throw error;
      }
      this.pendingRead = undefined;
      const stepId = (message.header as { stepId?: unknown }).stepId;
      if (typeof stepId === 'number' && this.stale.delete(stepId)) continue;
      return message;
    }
  }

  private markStale(stepId: number): void {
    this.stale.add(stepId);
    if (this.stale.size > MAX_STALE_STEPS) this.stale.delete(this.stale.values().next().value!);
  }

  /**
   * A signal that aborts after `timeoutMs` (a TimeoutError) or with the hop's own signal or `also`; clear() when done.
   * One timer and one controller per wait: AbortSignal.timeout + AbortSignal.any cost ~20 + ~70 µs of CPU each, per
   * send and per reply, which showed up in a profile of a loopback hop.
   */
  private deadline(timeoutMs: number, also?: AbortSignal): { signal: AbortSignal; clear: () => void } {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException(`no reply within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    const sources = [this.signal, also].filter((signal): signal is AbortSignal => signal !== undefined);
    const onAbort = (event: Event) => controller.abort((event.target as AbortSignal).reason);
    for (const source of sources) {
      if (source.aborted) controller.abort(source.reason);
      else source.addEventListener('abort', onAbort, { once: true });
    }
    return {
      signal: controller.signal,
      clear: () => {
        clearTimeout(timer);
        for (const source of sources) source.removeEventListener('abort', onAbort);
      },
    };
  }

  private classify(error: unknown, timeoutMs: number): RemoteSpanError {
    if (this.signal?.aborted) return this.error('aborted', 'aborted', error);
    const name = (error as Error)?.name;
    if (name === 'TimeoutError' || name === 'AbortError') return this.error('timeout', `no reply within ${timeoutMs} ms`, error);
    if (isMalformed(error)) return this.error('malformed', messageOf(error), error);
    return this.error('stream', messageOf(error), error);
  }

  /**
   * Checks the attestation of a reply to a step the previous hop pushed here, once its input (that hop's output) is
   * known. Called in step order, as the history chain requires; a bad one fails this hop.
   */
  verifyPushed(input: StepInput, result: HopResult): void {
    try {
      this.verify(result.attestation, input, result.output);
    } catch (error) {
      this.failure = error as RemoteSpanError;
      this.channel.abort(asError(error));
      throw error;
    }
  }

  /**
   * Checks a reply's attestation against what we sent (or the upstream hop pushed) and received, and keeps it. The
   * digests and the history chain are computed here, in step order; the Ed25519 check (~0.15 ms) runs on the thread
   * pool off the step's critical path, and the next step on this hop (or `verified()`) waits for it. Deferring it
   * by one step gives nothing away: the channel already authenticates the server, and the signature is evidence for
   * spot-checks, which wait for it.
   */
  private verify(attestation: string | undefined, input: StepInput, output: Float32Array): void {
    const history = this.history.extend(input.position, input.tokens, tensorDigest(asReceived(input.hidden, this.hiddenSize, this.codec)));
    if (attestation === undefined) {
      if (this.requireAttestations) throw this.error('malformed', `stepResult at position ${input.position} carries no attestation`);
      return;
    }
    const claim = { sessionId: this.sessionId, position: input.position, tokens: input.tokens, spanStart: this.start, spanEnd: this.end, dtype: this.codec, history, output: tensorDigest(output) };
    const valid = verifyAttestation(this.peerId, claim, attestation);
    this.checks = this.checks.then(async () => {
      if (!(await valid)) throw this.error('malformed', `stepResult at position ${input.position} has an attestation that does not verify (wrong signer, input history or output)`);
      this.attested.push({ peerId: this.peerId, claim, signature: attestation, output });
    });
    this.checks.catch((error: RemoteSpanError) => {
      if (this.failure) return;
      this.failure = error;
      this.channel.abort(asError(error));
    });
  }

  /** Resolves once every reply so far has had its attestation checked; rejects with the first that failed. */
  verified(): Promise<void> {
    return this.checks;
  }

  private check(reply: DecodedMessage, input: StepInput, stepId: number): HopResult {
    const header = reply.header;
    if (header.type === 'error') {
      throw this.error('server', `step ${stepId} failed: ${header.code}: ${header.message}`, undefined, header.code);
    }
    if (header.type !== 'stepResult') throw this.error('malformed', `expected stepResult, got ${summarize(header)}`);
    const problems: string[] = [];
    if (header.sessionId !== this.sessionId) problems.push(`sessionId ${header.sessionId} ≠ ${this.sessionId}`);
    if (header.stepId !== stepId) problems.push(`stepId ${header.stepId} ≠ ${stepId}`);
    if (header.position !== input.position) problems.push(`position ${header.position} ≠ ${input.position}`);
    const [rows, cols] = header.tensor.shape;
    if (rows !== input.tokens || cols !== this.hiddenSize) problems.push(`shape [${header.tensor.shape.join(', ')}] ≠ [${input.tokens}, ${this.hiddenSize}]`);
    if (header.tensor.dtype !== this.codec) problems.push(`dtype ${header.tensor.dtype} ≠ ${this.codec}`);
    const tensor = reply.tensor;
    if (!tensor || tensor.length !== input.tokens * this.hiddenSize) problems.push('tensor size mismatch');
    else {
      const max = this.maxMagnitude;
      for (let i = 0; i < tensor.length; i++) {
        const value = tensor[i]!;
        if (!Number.isFinite(value)) {
          problems.push(`non-finite value ${value} at ${i}`);
          break;
        }
        // Charged here, to the hop that produced it, not to the next hop that would fail on it.
        if (value > max || value < -max) {
          problems.push(`implausible magnitude ${value} at ${i} (limit ${max})`);
          break;
        }
      }
    }
    if (problems.length > 0) throw this.error('malformed', `bad stepResult for step ${stepId}: ${problems.join('; ')}`);
    return { output: tensor!, forwarded: header.forwarded === true, computeMs: header.computeMs, serverMs: header.serverMs, attestation: header.attestation };
  }
}

const EMPTY = new Float32Array(0);

/** Resolves or rejects with `promise`, or rejects with the signal's reason once it aborts (the promise runs on). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => (signal.removeEventListener('abort', onAbort), resolve(value)),
      (error: unknown) => (signal.removeEventListener('abort', onAbort), reject(error)),
    );
  });
}

function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

/** Errors our own encoder throws (before writing): a frame or tensor over our limits, a tensor it cannot encode. */
function isEncodingError(error: unknown): boolean {
  if (!(error instanceof CorollaError)) return false;
  return error.code === 'FRAME_TOO_LARGE' || error.code === 'TENSOR_TOO_LARGE' || error.code === 'TENSOR_NON_FINITE' || error.code === 'MALFORMED_TENSOR' || error.code === 'UNSUPPORTED_CODEC';
}

function isMalformed(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && (code === 'MALFORMED' || code.startsWith('MALFORMED_') || code === 'FRAME_TOO_LARGE' || code.startsWith('TENSOR_') || code === 'UNSUPPORTED_CODEC');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function summarize(header: Message): string {
  const text = JSON.stringify(header);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
