/**
 * The block protocol (/corolla/block/1.0.0) over one loaded span: the per-stream request loop, limits and timeouts.
 * One `BlockService` exists per loaded span; the block server swaps it when it moves to another span. The sessions
 * live in session-table.ts, and each request type has its handler in handlers/.
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
 * - Forwarding (see handlers/push.ts): with a `dialer`, `opened` says `forwarding: true`; a step naming `next` hops
 *   has its output pushed to next[0] over this server's own stream to it (forward-links.ts), and a `push` from the
 *   peer a client named as its session's upstream runs as that client's step, answered on the client's stream.
 *   Replies to pushed steps and replies to the client's own requests are whole frames on one stream, never interleaved
 *   inside a frame.
 * - `stepResult` carries `computeMs` (queue + engine) and `serverMs` (from the request read to the reply encoded).
 * - `close` of an open or server-expired session → `closed`; of an id never opened here → UNKNOWN_SESSION.
 * - Invalid messages get an `error` with the precise code and the stream keeps going; a frame over the size limit
 *   gets FRAME_TOO_LARGE and then that stream (only) is closed, since the byte stream cannot be resynchronised.
 * - Failures the peer cannot act on (kernel errors, whose text is onnxruntime's, and anything unexpected) are
 *   logged here and replied as INTERNAL "internal error".
 * - Timeouts: a stream with no work (open, step, forward, close) for `idleTimeoutMs` is closed with its sessions —
 *   pings and refused requests do not keep it alive; a session with no step for `idleTimeoutMs`, open longer than
 *   `maxSessionMs`, or past `slowSessionGraceMs` with fewer than `minSessionRate` cached tokens per second of its age
 *   (one that only dribbles), is closed by the server, and later requests naming it get SESSION_EXPIRED.
 * - Quotas (quotas.ts): streams, sessions, KV-cache share and request bytes in flight per peer and per IP; QUOTA_EXCEEDED.
 * - Sizes: the frame limit is derived from the model, hiddenSize × max(step cap, forward cap) × 4 bytes + header (never
 *   above `maxFrameBytes`), and each request's header is checked (session, width, token caps, quotas) before its
 *   tensor is decoded.
 */
import type { Connection, Stream } from '@libp2p/interface';
import { TypedEventEmitter } from 'main-event';
import { CorollaError, isPeerSafe } from '../errors.js';
import type { SpanExecutor } from '../engine/types.js';
import type { BlockRange } from '../util/blocks.js';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import type { Socket } from 'node:net';
import { messageChannel, type MessageChannel } from '../wire/channel.js';
import { socketChannel } from '../wire/socket-channel.js';
import { FrameTooLargeError, TinyMessageError } from '../wire/errors.js';
import { FRAME_PREFIX_BYTES, HEADER_LENGTH_BYTES } from '../wire/frames.js';
import {
  MAX_HEADER_BYTES,
  MAX_STEP_TOKENS,
  decodeMessagePayload,
  errorMessage,
  type DecodedMessage,
  type Message,
  type MessageInput,
  type PendingMessage,
  type TensorInput,
} from '../wire/messages.js';
import { ipOf } from '../swarm/addresses.js';
import type { LanePeer } from '../swarm/lanes.js';
import type { StepAttester } from './attestation.js';
import { BatchScheduler } from './batch-scheduler.js';
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_FORWARD_TOKENS,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_STEP_TOKENS,
  DEFAULT_MAX_SESSION_MS,
  DEFAULT_MAX_SESSIONS_PER_STREAM,
  DEFAULT_IP_QUOTA_MULTIPLIER,
  DEFAULT_MAX_PEER_BYTES_IN_FLIGHT,
  DEFAULT_MAX_SESSIONS_PER_PEER,
  DEFAULT_MAX_STREAMS_PER_PEER,
  DEFAULT_MIN_SESSION_RATE,
  DEFAULT_PEER_CACHE_SHARE,
  DEFAULT_SLOW_SESSION_GRACE_MS,
  MAX_TINY_MESSAGES_IN_A_ROW,
  STREAM_CLOSE_TIMEOUT_MS,
} from './defaults.js';
import { ForwardLinks, type BlockDialer } from './forward-links.js';
import { PeerQuotas, type QuotaLimits } from './quotas.js';
import { SessionExpiredError, ShuttingDownError } from './errors.js';
import type { SessionCloseEvent, SessionCloseReason, SessionOpenEvent } from './events.js';
import { checkRequestHeader, handleRequest, msSince, type Reply, type RequestContext } from './handlers/index.js';
import { SessionTable, type ServedSession, type StreamState } from './session-table.js';

export interface BlockServiceOptions {
  /** Decode steps per engine call (default DEFAULT_MAX_BATCH; the span should be loaded with the same maxBatch). */
  readonly maxBatch?: number;
  /** Batching window in ms, see BatchScheduler. */
  readonly batchWindowMs?: number;
  /** Close a stream / session after this long without a request (default DEFAULT_IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs?: number;
  /** Hard cap on a session's life (default DEFAULT_MAX_SESSION_MS). */
  readonly maxSessionMs?: number;
  /** Largest frame accepted (default DEFAULT_MAX_FRAME_BYTES). */
  readonly maxFrameBytes?: number;
  /** Most sessions open at once on one stream (default DEFAULT_MAX_SESSIONS_PER_STREAM). */
  readonly maxSessionsPerStream?: number;
  /** Most rows of a stateless forward (default DEFAULT_MAX_FORWARD_TOKENS). */
  readonly maxForwardTokens?: number;
  /** Most tokens of one step (default DEFAULT_MAX_STEP_TOKENS, at most the protocol's MAX_STEP_TOKENS). */
  readonly maxStepTokens?: number;
  /** Per-peer / per-IP quotas (defaults in defaults.ts). */
  readonly quotas?: Partial<QuotaLimits>;
  /** Dribbling sessions: grace period and minimum cached tokens per second (defaults in defaults.ts). */
  readonly slowSessionGraceMs?: number;
  readonly minSessionRate?: number;
  /** Opens streams to other servers: given, this server forwards steps to the next hops its clients name. */
  readonly dialer?: BlockDialer;
  readonly logger?: ComponentLogger;
  /** Signs every step reply (server/attestation.ts). */
  readonly attester?: StepAttester;
}

export interface BlockServiceEvents {
  'session:open': CustomEvent<SessionOpenEvent>;
  'session:close': CustomEvent<SessionCloseEvent>;
  /** Sessions opened or closed: the load to announce changed. */
  load: CustomEvent<undefined>;
}

/** A session used in-process (whole-model generation), batched with the protocol's sessions. */
export interface LocalSession {
  readonly id: string;
  /** Runs hidden states [tokens, hidden] at the session's position; returns the output rows. */
  step(hidden: Float32Array): Promise<Float32Array>;
  close(): void;
}

export class BlockService extends TypedEventEmitter<BlockServiceEvents> {
  readonly scheduler: BatchScheduler;
  readonly range: BlockRange;
  private readonly idleTimeoutMs: number;
  private readonly maxSessionMs: number;
  /** The frame limit in force: the configured one, or the model-derived one when that is lower. */
  readonly maxFrameBytes: number;
  private readonly maxTensorElements: number;
  private readonly slow: { graceMs: number; minRate: number };
  readonly quotas: PeerQuotas;
  private readonly log: Logger;
  private readonly sessions: SessionTable;
  private readonly context: RequestContext;
  private readonly streams = new Set<StreamState>();
  /** Each served stream's channel, for replies to steps pushed into its sessions from another stream. */
  private readonly channels = new WeakMap<StreamState, MessageChannel>();
  private readonly forwarder: ForwardLinks | undefined;
  private readonly sweeper: NodeJS.Timeout;
  private streamSerial = 0;
  private localSerial = 0;
  private closedReason: string | undefined;

  constructor(readonly span: SpanExecutor, options: BlockServiceOptions = {}) {
    super();
    this.range = span.range;
    this.log = (options.logger ?? silentLogger).forComponent('corolla:server:block-service');
    this.scheduler = new BatchScheduler(span, { maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH, windowMs: options.batchWindowMs });
    // AbortSignal.timeout and timers want whole milliseconds
    this.idleTimeoutMs = Math.max(1, Math.round(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS));
    this.maxSessionMs = Math.max(1, Math.round(options.maxSessionMs ?? DEFAULT_MAX_SESSION_MS));
    const maxForwardTokens = options.maxForwardTokens ?? DEFAULT_MAX_FORWARD_TOKENS;
    const maxStepTokens = Math.min(MAX_STEP_TOKENS, options.maxStepTokens ?? DEFAULT_MAX_STEP_TOKENS);
    // the largest honest request is a full step or forward in f32: anything bigger is refused from its prefix
    this.maxTensorElements = span.hiddenSize * Math.max(maxStepTokens, maxForwardTokens);
    const derivedFrameBytes = FRAME_PREFIX_BYTES + HEADER_LENGTH_BYTES + MAX_HEADER_BYTES + this.maxTensorElements * 4;
    this.maxFrameBytes = Math.min(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, derivedFrameBytes);
    this.slow = { graceMs: options.slowSessionGraceMs ?? DEFAULT_SLOW_SESSION_GRACE_MS, minRate: options.minSessionRate ?? DEFAULT_MIN_SESSION_RATE };
    this.quotas = new PeerQuotas(
      {
        maxSessionsPerPeer: DEFAULT_MAX_SESSIONS_PER_PEER,
        maxStreamsPerPeer: DEFAULT_MAX_STREAMS_PER_PEER,
        peerCacheShare: DEFAULT_PEER_CACHE_SHARE,
        maxPeerBytesInFlight: DEFAULT_MAX_PEER_BYTES_IN_FLIGHT,
        ipMultiplier: DEFAULT_IP_QUOTA_MULTIPLIER,
        ...options.quotas,
      },
      span.cacheTokensLeft(),
    );
    this.sessions = new SessionTable(span, this.scheduler, {
      opened: (session) => {
        this.safeDispatchEvent('session:open', { detail: this.describe(session) });
        this.safeDispatchEvent('load');
      },
      closed: (session, reason) => {
        this.safeDispatchEvent('session:close', { detail: { ...this.describe(session), reason, steps: session.steps, durationMs: Date.now() - session.openedAt } });
        this.safeDispatchEvent('load');
      },
    });
    this.forwarder = options.dialer ? new ForwardLinks(options.dialer, { maxFrameBytes: this.maxFrameBytes }) : undefined;
    this.context = {
      span,
      range: this.range,
      sessions: this.sessions,
      maxSessionsPerStream: options.maxSessionsPerStream ?? DEFAULT_MAX_SESSIONS_PER_STREAM,
      maxForwardTokens,
      maxStepTokens,
      quotas: this.quotas,
      scheduler: this.scheduler,
      forwarder: this.forwarder,
      upstreams: new WeakMap(),
      deliver: async (owner, reply) => {
        const channel = this.channels.get(owner);
        if (!channel || !this.streams.has(owner)) return false;
        return this.reply(channel, reply);
      },
      ...(options.attester ? { attester: options.attester } : {}),
    };
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
  handleStream(stream: Stream, connection?: Connection): Promise<void> {
    const channel = messageChannel(stream, { maxFrameBytes: this.maxFrameBytes, maxTensorElements: this.maxTensorElements });
    return this.serve(channel, { peerId: connection?.remotePeer.toString(), ip: ipOf(connection?.remoteAddr) });
  }

  /** Serves the block protocol on a direct lane's socket (swarm/lanes.ts) until it ends. Never throws. */
  handleLane(socket: Socket, peer: LanePeer): Promise<void> {
    const channel = socketChannel(socket, { maxFrameBytes: this.maxFrameBytes, maxTensorElements: this.maxTensorElements });
    return this.serve(channel, peer);
  }

  /** The request loop of one stream or lane, whichever carries it. */
  private async serve(channel: MessageChannel, peer: { peerId: string | undefined; ip: string | undefined }): Promise<void> {
    if (this.closedReason !== undefined) {
      channel.abort(new ShuttingDownError(this.closedReason));
      return;
    }
    const state: StreamState = { serial: ++this.streamSerial, channel, peerId: peer.peerId, ip: peer.ip, sessions: new Map(), expired: new Map() };
    try {
      this.quotas.admitStream(state, this.streams);
    } catch (refusal) {
      await this.refuseStream(channel, refusal);
      return;
    }
    this.streams.add(state);
    this.channels.set(state, channel);
    let graceful = true;
    let lastWork = Date.now();
    let tiny = 0; // messages in a row shorter than a frame
    try {
      for (;;) {
        let pending: PendingMessage;
        try {
          // only work (open, step, forward, close) keeps a stream alive: pings or junk every idle timeout − ε do not
          pending = await channel.receiveHeader({ signal: AbortSignal.timeout(Math.max(1, lastWork + this.idleTimeoutMs - Date.now())) });
        } catch (error) {
          if (isOversizeFrame(error)) {
            await this.reply(channel, { header: errorMessage(this.oversize(error)) });
            break; // the byte stream cannot be resynchronised
          }
          if (error instanceof CorollaError) {
            // A whole message arrived but is not a valid one: say why and keep serving, unless the stream keeps
            // sending messages too short to be frames (one byte of junk reads as a whole empty message, so answering
            // each would send a hundred bytes for one).
            tiny = error instanceof TinyMessageError ? tiny + 1 : 0;
            if (!(await this.reply(channel, { header: errorMessage(error) })) || tiny >= MAX_TINY_MESSAGES_IN_A_ROW) break;
            continue;
          }
          // end of stream, reset, or idle timeout
          graceful = !isTimeout(error);
          break;
        }
        const received = performance.now();
        const header = pending.header;
        tiny = 0;
        if (this.closedReason !== undefined) {
          await this.reply(channel, { header: errorMessage(new ShuttingDownError(this.closedReason), idsOf(header)) });
          break;
        }
        let release: (() => void) | undefined;
        let reply: Reply;
        try {
          release = this.quotas.acquireBytes(state, pending.frameBytes);
          checkRequestHeader(this.context, state, header);
          reply = await this.answer(state, decodeMessagePayload(pending, { maxTensorElements: this.maxTensorElements }));
          if (header.type !== 'ping' && reply.header.type !== 'error') lastWork = Date.now();
        } catch (error) {
          reply = { header: errorMessage(this.peerFacing(error, header.type), idsOf(header)) };
        }
        if (reply.header.type === 'stepResult') reply = { ...reply, header: { ...reply.header, serverMs: msSince(received) } };
        const sent = await this.reply(channel, reply);
        reply.afterReply?.();
        release?.();
        if (!sent) break;
      }
    } finally {
      this.endStream(state, 'stream-ended');
      if (graceful && channel.isOpen) {
        await channel.close({ signal: AbortSignal.timeout(STREAM_CLOSE_TIMEOUT_MS) }).catch(() => channel.abort(new Error('stream close failed')));
      } else if (channel.isOpen) {
        channel.abort(new Error('idle timeout'));
      }
    }
  }

  /** A stream over the peer's stream quota: its first request is answered with the refusal, then it is closed. */
  private async refuseStream(channel: MessageChannel, refusal: unknown): Promise<void> {
    try {
      const pending = await channel.receiveHeader({ signal: AbortSignal.timeout(Math.min(this.idleTimeoutMs, STREAM_CLOSE_TIMEOUT_MS)) });
      await this.reply(channel, { header: errorMessage(refusal, idsOf(pending.header)) });
      await channel.close({ signal: AbortSignal.timeout(STREAM_CLOSE_TIMEOUT_MS) });
    } catch {
      channel.abort(refusal instanceof Error ? refusal : new Error(String(refusal)));
    }
  }

  /** Opens a session for in-process use (whole-model generation). Throws CacheBudgetError when it does not fit. */
  openLocal(maxLength: number): LocalSession {
    if (this.closedReason !== undefined) throw new ShuttingDownError(this.closedReason);
    const engineId = `local-${++this.localSerial}`;
    const session = this.sessions.open({ clientId: engineId, engineId, peerId: undefined, ip: undefined, codec: 'f32', maxLength, owner: undefined });
    return {
      id: engineId,
      step: async (hidden) => {
        if (!this.sessions.has(session)) throw new SessionExpiredError(engineId, 'the server closed it');
        return this.sessions.run(session, hidden);
      },
      close: () => this.sessions.close(session, 'closed'),
    };
  }

  /** Stops serving: rejects queued steps, aborts every stream, frees every session. */
  close(reason = 'the server is shutting down'): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    clearInterval(this.sweeper);
    this.forwarder?.close();
    this.scheduler.drain(new ShuttingDownError(reason));
    for (const state of [...this.streams]) {
      this.endStream(state, 'shutdown');
      state.channel.abort(new ShuttingDownError(reason));
    }
    this.sessions.closeAll('shutdown');
  }

  private describe(session: ServedSession): SessionOpenEvent {
    return { sessionId: session.clientId, peerId: session.peerId, blocks: this.range, maxLength: session.maxLength, tokens: session.tokens };
  }

  private async answer(state: StreamState, message: DecodedMessage): Promise<Reply> {
    try {
      return await handleRequest(this.context, state, message);
    } catch (error) {
      return { header: errorMessage(this.peerFacing(error, message.header.type), idsOf(message.header)) };
    }
  }

  /** Logs what a peer will only learn as INTERNAL "internal error" (kernel failures, unexpected exceptions). */
  private peerFacing(error: unknown, request: string): unknown {
    if (!isPeerSafe(error)) this.log.error(`${request} failed: ${(error as Error)?.stack ?? String(error)}`);
    return error;
  }

  private async reply(channel: MessageChannel, reply: { header: MessageInput; tensor?: TensorInput }): Promise<boolean> {
    try {
      // a peer that stops reading cannot hold this stream (and its sessions) forever
      await channel.send(reply.header, reply.tensor, { signal: AbortSignal.timeout(this.idleTimeoutMs) });
      return true;
    } catch (error) {
      if (error instanceof CorollaError && reply.header.type !== 'error') {
        // The reply itself could not be encoded (e.g. a non-finite value under int8): say so instead.
        return this.reply(channel, { header: errorMessage(error, idsOf(reply.header as Message)) });
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

  private endStream(state: StreamState, reason: SessionCloseReason): void {
    if (!this.streams.delete(state)) return;
    for (const session of [...state.sessions.values()]) this.sessions.close(session, reason);
  }

  private sweep(): void {
    for (const { session, why } of this.sessions.sweep(this.idleTimeoutMs, this.maxSessionMs, this.slow)) this.log(`closed session ${session.engineId}: ${why}`);
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
