/**
 * The block protocol (/corolla/block/1.0.0) over one loaded span: per-stream sessions, the request loop, limits and
 * timeouts. One `BlockService` exists per loaded span; the block server swaps it when it moves to another span.
 *
 * Protocol decisions (see also wire/messages.ts and wire/protocol.ts):
 * - A stream carries requests answered strictly in order, one reply each. Typically one stream = one session, but a
 *   stream may hold up to `maxSessionsPerStream` sessions and interleave stateless `forward`s and `ping`s.
 * - Session ids are scoped to the stream that opened them: another stream (even from the same peer) naming the same
 *   id sees UNKNOWN_SESSION (or opens its own, separate session). Stream end, reset or `close` frees the cache.
 * - `open` must name exactly this server's span: [spanStart, spanEnd) == [start, end); anything else is INVALID_SPAN
 *   (the span runs as one fused graph, so sub-ranges are not offered). maxLength is reserved in the KV budget at
 *   once; CACHE_FULL when it does not fit.
 * - `step.position` ≤ the session's position: equal appends, lower rewinds first (replay after failover), higher is
 *   INVALID_STEP. The step's tensor may use any codec; replies use the codec named at `open`.
 *   `stepResult.position` echoes the step's position (the position of the reply's first row).
 * - `forward` is stateless, must name this server's span, and is capped at `maxForwardTokens` rows (REQUEST_TOO_LARGE).
 *   Its reply uses the request tensor's codec.
 * - `close` of an open or server-expired session → `closed`; of an id never opened here → UNKNOWN_SESSION.
 * - Invalid messages get an `error` with the precise code and the stream keeps going; a frame over the size limit
 *   gets FRAME_TOO_LARGE and then that stream (only) is closed, since the byte stream cannot be resynchronised.
 * - Timeouts: a stream with no request for `idleTimeoutMs` is closed with its sessions; a session with no step for
 *   `idleTimeoutMs`, or open longer than `maxSessionMs`, is closed by the server, and later requests naming it get
 *   SESSION_EXPIRED.
 */
import type { Connection, Stream } from '@libp2p/interface';
import { CorollaError } from '../errors.js';
import { DuplicateSessionError, InvalidSpanError, InvalidStepError, UnknownSessionError } from '../engine/errors.js';
import type { SpanExecutor, SpanRange } from '../engine/types.js';
import { messageChannel, type MessageChannel } from '../wire/channel.js';
import { FrameTooLargeError } from '../wire/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../wire/frames.js';
import { errorMessage, type DecodedMessage, type Message, type MessageInput, type TensorInput } from '../wire/messages.js';
import type { WireDtype } from '../wire/tensor-codec.js';
import { BatchScheduler } from './batch-scheduler.js';
import { RequestTooLargeError, SessionExpiredError, ShuttingDownError, TooManySessionsError, UnexpectedMessageError } from './errors.js';

export interface BlockServiceOptions {
  /** Decode steps per engine call (default 8; the span should be loaded with the same maxBatch). */
  readonly maxBatch?: number;
  /** Batching window in ms (default 2), see BatchScheduler. */
  readonly batchWindowMs?: number;
  /** Close a stream / session after this long without a request (default 60 000 ms). */
  readonly idleTimeoutMs?: number;
  /** Hard cap on a session's life (default 1 h). */
  readonly maxSessionMs?: number;
  /** Largest frame accepted (default 64 MiB). */
  readonly maxFrameBytes?: number;
  /** Most sessions open at once on one stream (default 8). */
  readonly maxSessionsPerStream?: number;
  /** Most rows of a stateless forward (default 4096). */
  readonly maxForwardTokens?: number;
  /** Called after sessions open or close (for load announcements). */
  readonly onLoadChange?: () => void;
  readonly log?: (line: string) => void;
}

interface ServedSession {
  readonly clientId: string;
  readonly engineId: string;
  readonly codec: WireDtype;
  readonly maxLength: number;
  readonly openedAt: number;
  lastActivity: number;
  inFlight: boolean;
  readonly owner: StreamState | undefined;
}

interface StreamState {
  readonly serial: number;
  readonly stream: Stream;
  readonly sessions: Map<string, ServedSession>;
  /** Ids the server expired on this stream → reason (bounded). */
  readonly expired: Map<string, string>;
}

/** A session used in-process (whole-model generation), batched with the protocol's sessions. */
export interface LocalSession {
  readonly id: string;
  /** Runs hidden states [tokens, hidden] at the session's position; returns the output rows. */
  step(hidden: Float32Array): Promise<Float32Array>;
  close(): void;
}

const MAX_TOMBSTONES = 64;

export class BlockService {
  readonly scheduler: BatchScheduler;
  readonly range: SpanRange;
  private readonly idleTimeoutMs: number;
  private readonly maxSessionMs: number;
  private readonly maxFrameBytes: number;
  private readonly maxSessionsPerStream: number;
  private readonly maxForwardTokens: number;
  private readonly log: (line: string) => void;
  private readonly sessions = new Map<string, ServedSession>();
  private readonly streams = new Set<StreamState>();
  private readonly sweeper: NodeJS.Timeout;
  private streamSerial = 0;
  private localSerial = 0;
  private closedReason: string | undefined;

  constructor(readonly span: SpanExecutor, private readonly options: BlockServiceOptions = {}) {
    this.range = span.range;
    this.scheduler = new BatchScheduler(span, { maxBatch: options.maxBatch, windowMs: options.batchWindowMs });
    // AbortSignal.timeout and timers want whole milliseconds
    this.idleTimeoutMs = Math.max(1, Math.round(options.idleTimeoutMs ?? 60_000));
    this.maxSessionMs = Math.max(1, Math.round(options.maxSessionMs ?? 60 * 60_000));
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxSessionsPerStream = options.maxSessionsPerStream ?? 8;
    this.maxForwardTokens = options.maxForwardTokens ?? 4096;
    this.log = options.log ?? (() => {});
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, this.idleTimeoutMs / 4)));
    this.sweeper.unref();
  }

  /** Open sessions (protocol and local). */
  get activeSessions(): number {
    return this.sessions.size;
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  cacheTokensLeft(): number {
    return this.span.cacheTokensLeft();
  }

  /** Serves one block-protocol stream until it ends. Never throws. */
  async handleStream(stream: Stream, _connection?: Connection): Promise<void> {
    if (this.closedReason !== undefined) {
      stream.abort(new ShuttingDownError(this.closedReason));
      return;
    }
    const state: StreamState = { serial: ++this.streamSerial, stream, sessions: new Map(), expired: new Map() };
    this.streams.add(state);
    const channel = messageChannel(stream, { maxFrameBytes: this.maxFrameBytes });
    let graceful = true;
    try {
      for (;;) {
        let message: DecodedMessage;
        try {
          message = await channel.receive({ signal: AbortSignal.timeout(this.idleTimeoutMs) });
        } catch (error) {
          if (isOversizeFrame(error)) {
            await this.reply(channel, errorMessage(this.oversize(error)));
            break; // the byte stream cannot be resynchronised
          }
          if (error instanceof CorollaError) {
            // A whole frame arrived but is not a valid message: say why and keep serving.
            if (!(await this.reply(channel, errorMessage(error)))) break;
            continue;
          }
          // end of stream, reset, or idle timeout
          graceful = !isTimeout(error);
          break;
        }
        if (this.closedReason !== undefined) {
          await this.reply(channel, errorMessage(new ShuttingDownError(this.closedReason), idsOf(message.header)));
          break;
        }
        const answer = await this.answer(state, message);
        if (!(await this.reply(channel, answer.header, answer.tensor))) break;
      }
    } finally {
      this.endStream(state);
      if (graceful && stream.status === 'open') {
        await stream.close({ signal: AbortSignal.timeout(2000) }).catch(() => stream.abort(new Error('stream close failed')));
      } else if (stream.status === 'open') {
        stream.abort(new Error('idle timeout'));
      }
    }
  }

  /** Opens a session for in-process use (whole-model generation). Throws CacheBudgetError when it does not fit. */
  openLocal(maxLength: number): LocalSession {
    if (this.closedReason !== undefined) throw new ShuttingDownError(this.closedReason);
    const engineId = `local-${++this.localSerial}`;
    this.span.openSession(engineId, maxLength);
    const now = Date.now();
    const session: ServedSession = { clientId: engineId, engineId, codec: 'f32', maxLength, openedAt: now, lastActivity: now, inFlight: false, owner: undefined };
    this.sessions.set(engineId, session);
    this.options.onLoadChange?.();
    return {
      id: engineId,
      step: async (hidden) => {
        if (!this.sessions.has(engineId)) throw new SessionExpiredError(engineId, 'the server closed it');
        session.inFlight = true;
        try {
          return await this.scheduler.submit({ sessionId: engineId, hidden });
        } finally {
          session.inFlight = false;
          session.lastActivity = Date.now();
        }
      },
      close: () => this.closeSession(session),
    };
  }

  /** Stops serving: rejects queued steps, aborts every stream, frees every session. */
  close(reason = 'the server is shutting down'): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    clearInterval(this.sweeper);
    this.scheduler.drain(new ShuttingDownError(reason));
    for (const state of [...this.streams]) {
      this.endStream(state);
      state.stream.abort(new ShuttingDownError(reason));
    }
    for (const session of [...this.sessions.values()]) this.closeSession(session);
  }

  // ---- requests ------------------------------------------------------------------------------------------------

  private async answer(state: StreamState, message: DecodedMessage): Promise<{ header: MessageInput; tensor?: TensorInput }> {
    const header = message.header;
    try {
      switch (header.type) {
        case 'open':
          return { header: this.open(state, header) };
        case 'step':
          return await this.step(state, header, message.tensor!);
        case 'close':
          return { header: this.closeRequest(state, header.sessionId) };
        case 'forward':
          return await this.forward(header, message.tensor!);
        case 'ping':
          return { header: { type: 'pong', nonce: header.nonce } };
        default:
          throw new UnexpectedMessageError(header.type);
      }
    } catch (error) {
      if (!(error instanceof CorollaError)) this.log(`unexpected error answering ${header.type}: ${(error as Error)?.stack ?? String(error)}`);
      return { header: errorMessage(error, idsOf(header)) };
    }
  }

  private checkSpan(spanStart: number, spanEnd: number): void {
    const { start, end } = this.range;
    if (spanStart !== start || spanEnd !== end) {
      throw new InvalidSpanError(`this server serves exactly blocks [${start}, ${end}); [${spanStart}, ${spanEnd}) was requested (sub-ranges are not offered)`);
    }
  }

  private open(state: StreamState, m: Extract<Message, { type: 'open' }>): MessageInput {
    this.checkSpan(m.spanStart, m.spanEnd);
    if (state.sessions.has(m.sessionId)) throw new DuplicateSessionError(m.sessionId);
    if (state.sessions.size >= this.maxSessionsPerStream) throw new TooManySessionsError(this.maxSessionsPerStream);
    const engineId = `s${state.serial}-${m.sessionId}`;
    this.span.openSession(engineId, m.maxLength); // CACHE_FULL when the budget cannot hold maxLength
    const now = Date.now();
    const session: ServedSession = { clientId: m.sessionId, engineId, codec: m.codec, maxLength: m.maxLength, openedAt: now, lastActivity: now, inFlight: false, owner: state };
    state.sessions.set(m.sessionId, session);
    state.expired.delete(m.sessionId);
    this.sessions.set(engineId, session);
    this.options.onLoadChange?.();
    return { type: 'opened', sessionId: m.sessionId, position: 0, cacheTokensLeft: this.span.cacheTokensLeft() };
  }

  private sessionOf(state: StreamState, sessionId: string): ServedSession {
    const session = state.sessions.get(sessionId);
    if (session) return session;
    const expired = state.expired.get(sessionId);
    if (expired !== undefined) throw new SessionExpiredError(sessionId, expired);
    throw new UnknownSessionError(sessionId);
  }

  private async step(state: StreamState, m: Extract<Message, { type: 'step' }>, hidden: Float32Array): Promise<{ header: MessageInput; tensor: TensorInput }> {
    const session = this.sessionOf(state, m.sessionId);
    const H = this.span.hiddenSize;
    const width = m.tensor.shape[1]!;
    if (width !== H) throw new InvalidStepError(`step hidden states are ${width} wide, but this model's hidden size is ${H}`);
    const current = this.span.session(session.engineId)?.position ?? 0;
    if (m.position > current) {
      throw new InvalidStepError(`step at position ${m.position} is ahead of session "${m.sessionId}", which holds ${current} tokens (a step may only repeat or go back)`);
    }
    if (m.position + m.tokens > session.maxLength) {
      throw new InvalidStepError(`step of ${m.tokens} tokens at position ${m.position} exceeds maxLength ${session.maxLength} of session "${m.sessionId}"`);
    }
    session.inFlight = true;
    session.lastActivity = Date.now();
    let out: Float32Array;
    try {
      out = await this.scheduler.submit({ sessionId: session.engineId, hidden, position: m.position });
    } finally {
      session.inFlight = false;
      session.lastActivity = Date.now();
    }
    return {
      header: { type: 'stepResult', sessionId: m.sessionId, stepId: m.stepId, position: m.position },
      tensor: { data: out, shape: [m.tokens, H], dtype: session.codec },
    };
  }

  private closeRequest(state: StreamState, sessionId: string): MessageInput {
    const session = state.sessions.get(sessionId);
    if (session) this.closeSession(session);
    else if (!state.expired.has(sessionId)) throw new UnknownSessionError(sessionId);
    state.expired.delete(sessionId);
    return { type: 'closed', sessionId };
  }

  private async forward(m: Extract<Message, { type: 'forward' }>, hidden: Float32Array): Promise<{ header: MessageInput; tensor: TensorInput }> {
    this.checkSpan(m.spanStart, m.spanEnd);
    const [tokens, width] = m.tensor.shape as [number, number];
    const H = this.span.hiddenSize;
    if (width !== H) throw new InvalidStepError(`forward hidden states are ${width} wide, but this model's hidden size is ${H}`);
    if (tokens > this.maxForwardTokens) throw new RequestTooLargeError(`forward of ${tokens} rows exceeds this server's limit of ${this.maxForwardTokens}`);
    const out = await this.span.forward(hidden, tokens);
    return { header: { type: 'forwardResult', requestId: m.requestId }, tensor: { data: out, shape: [tokens, H], dtype: m.tensor.dtype } };
  }

  // ---- bookkeeping ---------------------------------------------------------------------------------------------

  private async reply(channel: MessageChannel, header: MessageInput, tensor?: TensorInput): Promise<boolean> {
    try {
      // a peer that stops reading cannot hold this stream (and its sessions) forever
      await channel.send(header, tensor, { signal: AbortSignal.timeout(this.idleTimeoutMs) });
      return true;
    } catch (error) {
      if (error instanceof CorollaError && header.type !== 'error') {
        // The reply itself could not be encoded (e.g. a non-finite value under int8): say so instead.
        return this.reply(channel, errorMessage(error, idsOf(header as Message)));
      }
      return false; // the stream is gone
    }
  }

  /** The FRAME_TOO_LARGE error for a refused length prefix, with the sizes when known. */
  private oversize(error: unknown): FrameTooLargeError {
    if (error instanceof FrameTooLargeError) return error;
    const declared = /(\d+)\s*>\s*\d+/.exec((error as Error)?.message ?? '');
    return new FrameTooLargeError(declared ? Number(declared[1]) : this.maxFrameBytes + 1, this.maxFrameBytes);
  }

  private closeSession(session: ServedSession, expiredReason?: string): void {
    if (!this.sessions.delete(session.engineId)) return;
    this.span.closeSession(session.engineId);
    this.scheduler.forget(session.engineId);
    const owner = session.owner;
    if (owner) {
      owner.sessions.delete(session.clientId);
      if (expiredReason !== undefined) {
        owner.expired.set(session.clientId, expiredReason);
        if (owner.expired.size > MAX_TOMBSTONES) owner.expired.delete(owner.expired.keys().next().value!);
      }
    }
    this.options.onLoadChange?.();
  }

  private endStream(state: StreamState): void {
    if (!this.streams.delete(state)) return;
    for (const session of [...state.sessions.values()]) this.closeSession(session);
  }

  private sweep(): void {
    const now = Date.now();
    for (const session of [...this.sessions.values()]) {
      if (session.inFlight) continue;
      if (now - session.lastActivity > this.idleTimeoutMs) {
        this.log(`closing idle session ${session.engineId}`);
        this.closeSession(session, `no step for ${this.idleTimeoutMs / 1000} s (idle timeout)`);
      } else if (now - session.openedAt > this.maxSessionMs) {
        this.log(`closing session ${session.engineId}: open longer than the cap`);
        this.closeSession(session, `open longer than ${this.maxSessionMs / 1000} s (session time cap)`);
      }
    }
  }
}

function idsOf(header: Message): { sessionId?: string; stepId?: number; requestId?: string } {
  const h = header as { sessionId?: string; stepId?: number; requestId?: string };
  return { sessionId: h.sessionId, stepId: h.stepId, requestId: h.requestId };
}

/** lp framing refused a length prefix (over maxDataLength), or our frame decoder did. */
function isOversizeFrame(error: unknown): boolean {
  if (error instanceof FrameTooLargeError) return true;
  const name = (error as { name?: string })?.name;
  return name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError';
}

function isTimeout(error: unknown): boolean {
  const name = (error as { name?: string })?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}
