/**
 * The sessions a block service holds: protocol sessions (scoped to the stream that opened them) and local ones
 * (whole-model generation). It owns their KV-cache reservations on the span, the ids the server expired on each
 * stream (so late requests get SESSION_EXPIRED rather than UNKNOWN_SESSION), and the idle / time-cap sweep.
 */
import type { MessageChannel } from '../wire/channel.js';
import { UnknownSessionError } from '../engine/errors.js';
import type { SpanExecutor } from '../engine/types.js';
import type { WireDtype } from '../wire/tensor-codec.js';
import type { BatchScheduler } from './batch-scheduler.js';
import { MAX_EXPIRED_PER_STREAM } from './defaults.js';
import { SessionExpiredError } from './errors.js';
import type { SessionCloseReason } from './events.js';

export interface ServedSession {
  /** The id the client chose (local sessions: the engine id). */
  readonly clientId: string;
  /** The id on the span: unique across streams. */
  readonly engineId: string;
  /** The client's peer id; undefined for local sessions. */
  readonly peerId: string | undefined;
  /** The client's IP address, over IP transports. */
  readonly ip: string | undefined;
  readonly codec: WireDtype;
  readonly maxLength: number;
  readonly openedAt: number;
  lastActivity: number;
  inFlight: boolean;
  /** Rows run through the span for this session (replays count again). */
  tokens: number;
  steps: number;
  /** The stream that opened it; undefined for local sessions. */
  readonly owner: StreamState | undefined;
}

export interface StreamState {
  readonly serial: number;
  /** The stream or lane it arrives on. */
  readonly channel: MessageChannel;
  readonly peerId: string | undefined;
  readonly ip: string | undefined;
  readonly sessions: Map<string, ServedSession>;
  /** Ids the server expired on this stream → reason (bounded). */
  readonly expired: Map<string, string>;
}

export interface SessionTableHooks {
  opened(session: ServedSession): void;
  closed(session: ServedSession, reason: SessionCloseReason): void;
}

export class SessionTable {
  private readonly sessions = new Map<string, ServedSession>();

  constructor(private readonly span: SpanExecutor, private readonly scheduler: BatchScheduler, private readonly hooks: SessionTableHooks) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Reserves the session's cache (CACHE_FULL when the budget cannot hold maxLength) and registers it. */
  open(fields: Omit<ServedSession, 'openedAt' | 'lastActivity' | 'inFlight' | 'tokens' | 'steps'>): ServedSession {
    this.span.openSession(fields.engineId, fields.maxLength);
    const now = Date.now();
    const session: ServedSession = { ...fields, openedAt: now, lastActivity: now, inFlight: false, tokens: 0, steps: 0 };
    this.sessions.set(session.engineId, session);
    if (session.owner) {
      session.owner.sessions.set(session.clientId, session);
      session.owner.expired.delete(session.clientId);
    }
    this.hooks.opened(session);
    return session;
  }

  /** Every open session (protocol and local). */
  list(): ServedSession[] {
    return [...this.sessions.values()];
  }

  has(session: ServedSession): boolean {
    return this.sessions.get(session.engineId) === session;
  }

  /** The stream's session `sessionId`; SESSION_EXPIRED when the server closed it, UNKNOWN_SESSION otherwise. */
  find(state: StreamState, sessionId: string): ServedSession {
    const session = state.sessions.get(sessionId);
    if (session) return session;
    const expired = state.expired.get(sessionId);
    if (expired !== undefined) throw new SessionExpiredError(sessionId, expired);
    throw new UnknownSessionError(sessionId);
  }

  /** Runs `hidden` for the session through the scheduler, keeping its activity and token count. */
  async run(session: ServedSession, hidden: Float32Array, position?: number): Promise<Float32Array> {
    session.inFlight = true;
    session.lastActivity = Date.now();
    try {
      const out = await this.scheduler.submit({ sessionId: session.engineId, hidden, ...(position !== undefined ? { position } : {}) });
      session.tokens += hidden.length / this.span.hiddenSize;
      session.steps++;
      return out;
    } finally {
      session.inFlight = false;
      session.lastActivity = Date.now();
    }
  }

  /** Frees the session; with `expiredReason`, later requests naming it on its stream get SESSION_EXPIRED. */
  close(session: ServedSession, reason: SessionCloseReason, expiredReason?: string): void {
    if (!this.has(session)) return;
    this.sessions.delete(session.engineId);
    this.span.closeSession(session.engineId);
    this.scheduler.forget(session.engineId);
    const owner = session.owner;
    if (owner) {
      owner.sessions.delete(session.clientId);
      if (expiredReason !== undefined) {
        owner.expired.set(session.clientId, expiredReason);
        if (owner.expired.size > MAX_EXPIRED_PER_STREAM) owner.expired.delete(owner.expired.keys().next().value!);
      }
    }
    this.hooks.closed(session, reason);
  }

  closeAll(reason: SessionCloseReason): void {
    for (const session of [...this.sessions.values()]) this.close(session, reason);
  }

  /**
   * Closes sessions idle for longer than `idleMs`, open longer than `maxMs`, or (protocol sessions) past
   * `slow.graceMs` whose cached tokens average under `slow.minRate` per second of their age (a session that only
   * dribbles); returns what it closed and why.
   */
  sweep(idleMs: number, maxMs: number, slow: { graceMs: number; minRate: number }): { session: ServedSession; why: string }[] {
    const now = Date.now();
    const closed: { session: ServedSession; why: string }[] = [];
    for (const session of [...this.sessions.values()]) {
      if (session.inFlight) continue;
      const age = now - session.openedAt;
      const cached = this.span.session(session.engineId)?.position ?? 0;
      let why: string | undefined;
      if (now - session.lastActivity > idleMs) why = `no step for ${idleMs / 1000} s (idle timeout)`;
      else if (age > maxMs) why = `open longer than ${maxMs / 1000} s (session time cap)`;
      else if (session.peerId !== undefined && age > slow.graceMs && cached < (slow.minRate * age) / 1000) {
        why = `too slow: ${cached} tokens cached in ${Math.round(age / 1000)} s, under the minimum of ${slow.minRate} tokens/s after ${slow.graceMs / 1000} s`;
      }
      if (why === undefined) continue;
      this.close(session, 'expired', why);
      closed.push({ session, why });
    }
    return closed;
  }
}
