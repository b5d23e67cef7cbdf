/**
 * Client-side failures. Each is a CorollaError with a stable code, so callers can branch on `code` or `instanceof`
 * and the cause chain tells the whole story.
 */
import { CorollaError, RemoteError, type ErrorCode } from '../errors.js';
import type { BlockRange } from '../util/blocks.js';

/** Why a server was left out of route planning. */
export interface ExcludedServer {
  readonly peerId: string;
  readonly reason: 'banned' | 'state' | 'cache' | 'blocks' | 'span' | 'sub-span';
  readonly detail: string;
}

/**
 * No chain of usable servers covers the requested blocks. `uncoveredBlocks` lists the blocks that no usable server
 * holds at all; when it is empty the servers cover every block but their spans do not line up into a chain (servers
 * only accept their whole announced span), and `reachedBlock` says how far a chain can get.
 */
export class NoRouteError extends CorollaError {
  override readonly name: string = 'NoRouteError';
  readonly start: number;
  readonly end: number;
  readonly uncoveredBlocks: readonly number[];
  readonly reachedBlock: number;
  readonly excluded: readonly ExcludedServer[];
  constructor(init: { start: number; end: number; uncoveredBlocks: readonly number[]; reachedBlock: number; excluded: readonly ExcludedServer[] }) {
    const gaps = formatBlocks(init.uncoveredBlocks);
    const why = init.uncoveredBlocks.length > 0
      ? `no usable server holds block${init.uncoveredBlocks.length === 1 ? '' : 's'} ${gaps}`
      : `the usable servers' spans do not chain past block ${init.reachedBlock}`;
    const excluded = init.excluded.length > 0
      ? ` (${init.excluded.length} server${init.excluded.length === 1 ? '' : 's'} excluded: ${summarizeExcluded(init.excluded)})`
      : '';
    super('NO_ROUTE', `no route through blocks [${init.start}, ${init.end}): ${why}${excluded}`);
    this.start = init.start;
    this.end = init.end;
    this.uncoveredBlocks = init.uncoveredBlocks;
    this.reachedBlock = init.reachedBlock;
    this.excluded = init.excluded;
  }
}

export type RemoteSpanFailure =
  /** Dialing the server or opening the stream failed. */
  | 'dial'
  /** The stream ended, was reset, or a write failed. */
  | 'stream'
  /** No reply within the step (or open) timeout. */
  | 'timeout'
  /** The server answered with an `error` message. */
  | 'server'
  /** The reply does not match the request (wrong session, step id, position, shape, dtype, non-finite values). */
  | 'malformed'
  /** The session was aborted locally. */
  | 'aborted';

/** One hop (a server's span) failed. Any of these makes the client ban the server and fail over. */
export class RemoteSpanError extends CorollaError {
  override readonly name: string = 'RemoteSpanError';
  readonly peerId: string;
  readonly failure: RemoteSpanFailure;
  readonly span: BlockRange;
  /** The server's error code when `failure` is 'server' (e.g. CACHE_FULL, INVALID_SPAN). */
  readonly serverCode?: string;
  constructor(
    init: { peerId: string; failure: RemoteSpanFailure; start: number; end: number; serverCode?: string },
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super('REMOTE_SPAN_FAILED', `server ${shortPeer(init.peerId)} (blocks [${init.start}, ${init.end})): ${init.failure}: ${message}`, options);
    this.peerId = init.peerId;
    this.failure = init.failure;
    this.span = { start: init.start, end: init.end };
    this.serverCode = init.serverCode;
  }
}

/**
 * The swarm could not serve this session: failover ran out of retries or time. `failures` holds every failure seen,
 * in order; `cause` is the last one.
 */
export class SwarmUnavailableError extends CorollaError {
  override readonly name: string = 'SwarmUnavailableError';
  readonly failures: readonly unknown[];
  readonly elapsedMs: number;
  constructor(message: string, init: { failures: readonly unknown[]; elapsedMs: number }) {
    const last = init.failures[init.failures.length - 1];
    const details = init.failures.map((failure, i) => `#${i + 1} ${failure instanceof Error ? failure.message : String(failure)}`).join('\n  ');
    super('SWARM_UNAVAILABLE', message, { cause: last, details: details || undefined });
    this.failures = init.failures;
    this.elapsedMs = init.elapsedMs;
  }
}

/**
 * A replacement's replayed outputs differ from what a downstream hop computed its cache from, and rewinding that hop
 * failed: the session cannot continue with outputs that match its route, so it stops rather than drift silently.
 * Retryable as a whole (start the generation again).
 */
export class ReplayDivergedError extends CorollaError {
  override readonly name: string = 'ReplayDivergedError';
  readonly peerId: string;
  readonly span: BlockRange;
  constructor(peerId: string, start: number, end: number, cause: unknown) {
    super('SWARM_UNAVAILABLE', `server ${shortPeer(peerId)} (blocks [${start}, ${end})) holds a cache computed from outputs the replacement does not reproduce, and rewinding it failed`, { cause });
    this.peerId = peerId;
    this.span = { start, end };
  }
}

/**
 * The client's own step could not be sent: its tensor holds a non-finite value, or its frame exceeds the client's own
 * frame limit. The fault is ours, so no server is blamed or banned. `code` is the encoding failure's
 * (TENSOR_NON_FINITE, FRAME_TOO_LARGE, …).
 */
export class LocalEncodingError extends CorollaError {
  override readonly name: string = 'LocalEncodingError';
  constructor(code: ErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, `cannot send this step: ${message}`, options);
  }
}

/** A step or close on a session that is already closed (or failed for good). */
export class SessionClosedError extends CorollaError {
  override readonly name: string = 'SessionClosedError';
  constructor(message = 'the inference session is closed', options: { cause?: unknown } = {}) {
    super('SESSION_CLOSED', message, options);
  }
}

export function shortPeer(peerId: string): string {
  return peerId.length > 12 ? `…${peerId.slice(-8)}` : peerId;
}

/** "0-2, 4, 7-9" */
export function formatBlocks(blocks: readonly number[]): string {
  const sorted = [...blocks].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

function summarizeExcluded(excluded: readonly ExcludedServer[]): string {
  const counts = new Map<string, number>();
  for (const entry of excluded) counts.set(entry.reason, (counts.get(entry.reason) ?? 0) + 1);
  return [...counts.entries()].map(([reason, count]) => `${count} ${reason}`).join(', ');
}

/** A whole-model generation failed on the remote server (its code is kept), or the stream broke. */
export class RemoteGenerateError extends RemoteError {
  override readonly name = 'RemoteGenerateError';
}

/** A RemoteModel was used before start() finished. */
export class ModelNotStartedError extends CorollaError {
  override readonly name = 'ModelNotStartedError';
  constructor() {
    super('USAGE', 'the remote model is not started: call start() (or use RemoteModel.open) first');
  }
}
