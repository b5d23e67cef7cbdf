/**
 * One hop of a remote inference session: a stream to one block server on /corolla/block/1.0.0, carrying
 * `open`, then `step`s, then `close` (see src/wire/messages.ts).
 *
 * Every reply is checked against its request: the session id, step id and position must echo the request, the
 * tensor must be [tokens, hidden] in the negotiated codec, and every value finite. Anything else (an error reply,
 * a malformed or mismatched reply, a timeout, a reset or ended stream) is a RemoteSpanError; the hop is then dead
 * (its stream is aborted) and the session above fails over to another server.
 */
import { randomBytes } from 'node:crypto';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p, Stream } from '@libp2p/interface';
import { CorollaError } from '../errors.js';
import { messageChannel, type MessageChannel } from '../wire/channel.js';
import type { Codec, DecodedMessage, Message, StepResultMessage } from '../wire/messages.js';
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
}

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

  let stream: Stream;
  try {
    const peer = peerIdFromString(target.peerId);
    const addrs = (target.addrs ?? []).flatMap((addr) => {
      try {
        return [multiaddr(addr)];
      } catch {
        return [];
      }
    });
    if (addrs.length > 0) await node.peerStore.merge(peer, { multiaddrs: addrs });
    // one stream per session: libp2p's default of 64 outbound streams per protocol would fail a gateway's 65th
    // session locally (and ban a healthy server for it); the server's per-peer quota is the same constant
    stream = await node.dialProtocol(peer, BLOCK_PROTOCOL, { signal, maxOutboundStreams: BLOCK_STREAMS_PER_PEER });
  } catch (error) {
    throw fail(options.signal?.aborted ? 'aborted' : signal.aborted ? 'timeout' : 'dial', `cannot open a ${BLOCK_PROTOCOL} stream: ${messageOf(error)}`, error);
  }
  const channel = messageChannel(stream, { maxFrameBytes: options.maxFrameBytes });
  let reply: DecodedMessage;
  try {
    await channel.send({ type: 'open', sessionId, maxLength: init.maxLength, spanStart: init.start, spanEnd: init.end, codec }, undefined, { signal });
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
  return new RemoteSpan(channel, target.peerId, sessionId, init, codec, header.cacheTokensLeft, options);
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
  ) {
    this.peerId = peerId;
    this.sessionId = sessionId;
    this.start = init.start;
    this.end = init.end;
    this.maxLength = init.maxLength;
    this.hiddenSize = init.hiddenSize;
    this.codec = codec;
    this.cacheTokensLeft = cacheTokensLeft;
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
    return this.serialize(async () => (await this.pipeline([input], 1, Infinity))[0]!);
  }

  /**
   * Runs several steps in order, pipelined: up to `window` requests are in flight before their replies are read
   * (replies come back in request order). Used to replay history onto a replacement server. Each reply waits at
   * most the step timeout, and nothing waits past `deadline` (a performance.now() time), if given.
   */
  replay(inputs: readonly StepInput[], options: { window?: number; deadline?: number } = {}): Promise<Float32Array[]> {
    return this.serialize(() => this.pipeline(inputs, Math.max(1, options.window ?? 16), options.deadline ?? Infinity));
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
      await this.channel.receive({ signal });
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

  private async pipeline(inputs: readonly StepInput[], window: number, deadline: number): Promise<Float32Array[]> {
    const timeout = () => Math.max(1, Math.ceil(Math.min(this.stepTimeoutMs, deadline - performance.now())));
    let timeoutMs = this.stepTimeoutMs;
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
    const outputs: Float32Array[] = [];
    const stepIds: number[] = [];
    let sent = 0;
    try {
      while (outputs.length < inputs.length) {
        while (sent < inputs.length && sent - outputs.length < window) {
          const input = inputs[sent]!;
          const stepId = this.nextStepId++;
          stepIds.push(stepId);
          await this.channel
            .send(
              { type: 'step', sessionId: this.sessionId, stepId, position: input.position, tokens: input.tokens },
              { data: input.hidden, shape: [input.tokens, this.hiddenSize], dtype: this.codec },
              { signal: this.stepSignal((timeoutMs = timeout())) },
            )
            .catch((error: unknown) => {
              // Encoding fails before a byte is written (a frame over our own limit): our fault, not the server's.
              if (!isEncodingError(error)) throw error;
              throw new LocalEncodingError((error as CorollaError).code, messageOf(error), { cause: error });
            });
          sent++;
        }
        const index = outputs.length;
        const reply = await this.channel.receive({ signal: this.stepSignal((timeoutMs = timeout())) });
        const output = this.check(reply, inputs[index]!, stepIds[index]!);
        await this.verify(reply.header as StepResultMessage, inputs[index]!, output);
        outputs.push(output);
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

  private stepSignal(timeoutMs: number): AbortSignal {
    const timeout = AbortSignal.timeout(timeoutMs);
    return this.signal ? AbortSignal.any([this.signal, timeout]) : timeout;
  }

  private classify(error: unknown, timeoutMs: number): RemoteSpanError {
    if (this.signal?.aborted) return this.error('aborted', 'aborted', error);
    const name = (error as Error)?.name;
    if (name === 'TimeoutError' || name === 'AbortError') return this.error('timeout', `no reply within ${timeoutMs} ms`, error);
    if (isMalformed(error)) return this.error('malformed', messageOf(error), error);
    return this.error('stream', messageOf(error), error);
  }

  /** Checks the reply's attestation against what we sent and received, and keeps it. */
  private async verify(header: StepResultMessage, input: StepInput, output: Float32Array): Promise<void> {
    const history = this.history.extend(input.position, input.tokens, tensorDigest(asReceived(input.hidden, this.hiddenSize, this.codec)));
    if (header.attestation === undefined) {
      if (this.requireAttestations) throw this.error('malformed', `stepResult at position ${input.position} carries no attestation`);
      return;
    }
    const claim = { sessionId: this.sessionId, position: input.position, tokens: input.tokens, spanStart: this.start, spanEnd: this.end, dtype: this.codec, history, output: tensorDigest(output) };
    if (!(await verifyAttestation(this.peerId, claim, header.attestation))) {
      throw this.error('malformed', `stepResult at position ${input.position} has an attestation that does not verify (wrong signer, input history or output)`);
    }
    this.attested.push({ peerId: this.peerId, claim, signature: header.attestation, output });
  }

  private check(reply: DecodedMessage, input: StepInput, stepId: number): Float32Array {
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
    return tensor!;
  }
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
