/**
 * Errors a block server replies with (their `code` goes on the wire in an `error` message) or throws to its owner.
 * Engine errors (CACHE_FULL, UNKNOWN_SESSION, INVALID_STEP, INVALID_SPAN, KERNEL_ERROR…) and wire errors
 * (MALFORMED, FRAME_TOO_LARGE…) are replied with their own codes; these cover what only the server knows.
 */
import { CorollaError } from '../errors.js';

/** A peer sent a message that is valid on the wire but not a request (e.g. `opened`, `pong`). */
export class UnexpectedMessageError extends CorollaError {
  override readonly name = 'UnexpectedMessageError';
  constructor(type: string) {
    super('UNEXPECTED_MESSAGE', `"${type}" is not a request a block server answers (requests: open, step, push, close, forward, ping)`);
  }
}

/** The session was closed by the server: idle too long, or past its hard time cap. */
export class SessionExpiredError extends CorollaError {
  override readonly name = 'SessionExpiredError';
  constructor(readonly sessionId: string, reason: string) {
    super('SESSION_EXPIRED', `session "${sessionId}" was closed by the server: ${reason}`);
  }
}

/** Too many sessions open on one stream. */
export class TooManySessionsError extends CorollaError {
  override readonly name = 'TooManySessionsError';
  constructor(limit: number) {
    super('TOO_MANY_SESSIONS', `at most ${limit} sessions may be open on one stream; open another stream`);
  }
}

/** Which per-peer / per-IP quota a request ran into. */
export type QuotaKind = 'sessions' | 'streams' | 'cache' | 'bytes-in-flight';

/** A peer (or its IP address) is over one of its quotas; other peers are still served. */
export class QuotaExceededError extends CorollaError {
  override readonly name = 'QuotaExceededError';
  constructor(readonly quota: QuotaKind, message: string) {
    super('QUOTA_EXCEEDED', message);
  }
}

/** The server is shutting down or moving to another span: no new work is accepted. */
export class ShuttingDownError extends CorollaError {
  override readonly name = 'ShuttingDownError';
  constructor(reason = 'the server is shutting down') {
    super('SHUTTING_DOWN', reason);
  }
}

/** A request that does not fit this server's limits (forward too long, generation too long…). */
export class RequestTooLargeError extends CorollaError {
  override readonly name = 'RequestTooLargeError';
  constructor(message: string) {
    super('REQUEST_TOO_LARGE', message);
  }
}

/**
 * A `push` (a forwarded step) that this server does not accept: no session of that id and client here, or the client
 * did not name the pushing peer as the session's upstream. Both read the same, so a stranger learns nothing.
 */
export class ForwardRefusedError extends CorollaError {
  override readonly name = 'ForwardRefusedError';
  constructor(sessionId: string) {
    super('FORWARD_REFUSED', `no session "${sessionId}" here accepts steps pushed by this peer`);
  }
}

/** Bad options given to createBlockServer or `corolla serve`. */
export class ServerConfigError extends CorollaError {
  override readonly name = 'ServerConfigError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SERVER_CONFIG', message, options);
  }
}
