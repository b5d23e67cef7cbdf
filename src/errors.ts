/**
 * The root of every error Corolla throws on purpose, and the one table of error codes.
 *
 * Like viem's BaseError, a CorollaError carries a stable `code`, a short message, optional details and a cause
 * chain, so callers branch on `code` or `instanceof` and humans see the whole story in one message. Every code is
 * listed once in ERROR_CODES with whether retrying (elsewhere, or later) can help and which HTTP status a gateway
 * answers with. What crosses to a peer is `toPeerError(error)`: a code and a safe message, never the text of an
 * exception we did not raise on purpose.
 */

export interface ErrorCodeInfo {
  /** True when the same request may succeed later or on another server (capacity, timeouts, lost peers). */
  readonly retryable: boolean;
  /** The HTTP status a gateway maps this code to. */
  readonly httpStatus: number;
  /** True when the message may quote runtime internals (onnxruntime's text, paths): a peer is told only INTERNAL. */
  readonly internal: boolean;
}

const code = (httpStatus: number, retryable = false): ErrorCodeInfo => ({ httpStatus, retryable, internal: false });
const internalCode = (httpStatus: number): ErrorCodeInfo => ({ httpStatus, retryable: false, internal: true });

/** Every error code, with its retry and HTTP semantics. Add a code here before throwing it. */
export const ERROR_CODES = {
  // caller or configuration mistakes
  USAGE: code(400),
  INVALID_REQUEST: code(400),
  INVALID_SAMPLING_OPTIONS: code(400),
  SERVER_CONFIG: code(500),
  SWARM_CONFIG: code(500),
  CHILD_PROCESS: code(500),
  MAKE_MODEL_FAILED: code(500),
  // model files, tokenizers, downloads: the files are the operator's, so a gateway answers 500, not 4xx
  MODEL_NOT_FOUND: code(404),
  MODEL_CORRUPT: code(500),
  MODEL_UNSUPPORTED_ARCHITECTURE: code(500),
  MODEL_UNSUPPORTED_QUANT: code(500),
  MODEL_MISSING_TENSOR: code(500),
  MODEL_DOWNLOAD_FAILED: code(502, true),
  TOKENIZER_INVALID: code(500),
  TOKENIZER_UNSUPPORTED: code(500),
  CHAT_TEMPLATE_FAILED: code(500),
  /** The template itself rejected the messages (e.g. roles that do not alternate). */
  CHAT_TEMPLATE_RAISED: code(400),
  // engine
  CACHE_FULL: code(503, true),
  UNKNOWN_SESSION: code(404),
  DUPLICATE_SESSION: code(409),
  INVALID_STEP: code(400),
  INVALID_SPAN: code(400),
  /** onnxruntime failed; the message quotes its text. */
  KERNEL_ERROR: internalCode(500),
  SAMPLING_NO_VALID_TOKEN: code(500),
  // wire
  MALFORMED: code(400),
  MALFORMED_TENSOR: code(400),
  FRAME_TOO_LARGE: code(413),
  FRAME_TRUNCATED: code(400),
  TENSOR_TOO_LARGE: code(413),
  TENSOR_NON_FINITE: code(400),
  UNSUPPORTED_CODEC: code(400),
  // server
  UNEXPECTED_MESSAGE: code(400),
  /** The server closed the session (idle, time cap); the client may replay it on a new one. */
  SESSION_EXPIRED: code(410, true),
  /** A step or close on a client session that is already closed or failed for good. */
  SESSION_CLOSED: code(410),
  TOO_MANY_SESSIONS: code(429, true),
  /** A per-peer or per-IP quota (sessions, streams, KV-cache share, bytes in flight): retry later or elsewhere. */
  QUOTA_EXCEEDED: code(429, true),
  SHUTTING_DOWN: code(503, true),
  REQUEST_TOO_LARGE: code(413),
  /** A `push` into a session whose client did not name the pushing peer as its upstream (or no such session). */
  FORWARD_REFUSED: code(403),
  // swarm and client
  IDENTITY_FILE_INVALID: code(500),
  PSK_FILE_INVALID: code(500),
  SWARM_INVALID_RECORD: code(502),
  SWARM_PEER_REQUEST: code(502, true),
  SWARM_TIMEOUT: code(504, true),
  SWARM_UNAVAILABLE: code(503, true),
  /** a peer refused a direct-lane ticket; the dialer uses a libp2p stream instead */
  LANE_REFUSED: code(503, true),
  /** no direct lane to a peer could be opened; the dialer uses a libp2p stream instead */
  LANE_UNAVAILABLE: code(503, true),
  /** a DHT peer refused to store a record: its owner is over its quota on that node */
  DHT_QUOTA: code(429, true),
  /** A peer asked about a model (or anything) it does not announce; another server may serve it. */
  NOT_SERVING: code(404, true),
  NO_ROUTE: code(503, true),
  REMOTE_SPAN_FAILED: code(502, true),
  GENERATE_UNAVAILABLE: code(503, true),
  GENERATE_STREAM: code(502, true),
  /** a whole-model server streamed more tokens than asked for, or ids outside the vocabulary */
  GENERATE_MISBEHAVED: code(502, true),
  /** A peer answered with a code this version does not know. */
  REMOTE_ERROR: code(502, true),
  // gateway (HTTP)
  /** A missing, unknown or revoked API key. */
  UNAUTHORIZED: code(401),
  /** An API key that may not do this (admin routes). */
  FORBIDDEN: code(403),
  /** A request field this gateway does not support and would change the result (n > 1, tools, logprobs…). */
  UNSUPPORTED_PARAMETER: code(400),
  /** The gateway serves no model by that name. */
  UNKNOWN_MODEL: code(404),
  /** A request id that the ledger already holds. */
  REQUEST_ID_TAKEN: code(409),
  /** No usage record has that id. */
  UNKNOWN_REQUEST: code(404),
  /** A per-key or per-client rate limit; retry after the time given. */
  RATE_LIMITED: code(429, true),
  /** The ledger (Postgres/PGlite) failed; the message may quote the database. */
  LEDGER_FAILED: internalCode(500),
  /** Redis (shared state) failed or is unreachable. */
  SHARED_STATE_FAILED: code(503, true),
  // chain and incentives
  /** A private key, keystore or password that cannot be used. */
  INVALID_KEY: code(500),
  /** A signature that does not verify, or was made by the wrong signer. */
  INVALID_SIGNATURE: code(400),
  /** A contract call or transaction failed. */
  CHAIN_FAILED: code(502, true),
  /** The address is not registered in the AgentRegistry (register it, e.g. `corolla serve --register`). */
  NOT_REGISTERED: code(403),
  /** The address is registered but deactivated (or slashed) in the AgentRegistry. */
  AGENT_INACTIVE: code(403),
  /** The oracle's HTTP API did not answer, or answered with something that is not its rewards JSON. */
  ORACLE_UNAVAILABLE: code(503, true),
  /** A reward proof from the oracle that does not lead to the epoch's root on chain: never sent as a claim. */
  INVALID_REWARD_PROOF: code(502),
  /** An exception nobody raised on purpose; its text never leaves the process. */
  INTERNAL: internalCode(500),
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export class CorollaError extends Error {
  override readonly name: string = 'CorollaError';
  readonly code: ErrorCode;
  readonly details?: string;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: string } = {}) {
    super(options.details ? `${message}\n  details: ${options.details}` : message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  /** Whether trying again (later, or on another server) may succeed. */
  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  /** The HTTP status this error maps to. */
  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus;
  }

  /** Walks the cause chain and returns the first error matching `predicate`, if any. */
  walk(predicate: (error: unknown) => boolean): unknown {
    let current: unknown = this;
    while (current) {
      if (predicate(current)) return current;
      current = current instanceof Error ? current.cause : undefined;
    }
    return undefined;
  }
}

/** What a peer or an HTTP client is told about a failure. */
export interface PeerError {
  readonly code: ErrorCode;
  readonly message: string;
}

/** Longest message sent to a peer. */
export const MAX_PEER_ERROR_MESSAGE = 1024;

/**
 * True for an error a peer may be told as it is: ours, with a code whose message quotes no runtime internals.
 * Anything else is worth logging locally, since the peer only learns "internal error".
 */
export function isPeerSafe(error: unknown): error is CorollaError {
  return error instanceof CorollaError && !ERROR_CODES[error.code].internal;
}

/**
 * The safe, serializable form of an error: our own errors keep their code and message; anything else (and our
 * internal codes, see ERROR_CODES) becomes INTERNAL with a fixed message, so runtime text (paths, stack fragments,
 * kernel messages) never leaves the process.
 */
export function toPeerError(error: unknown): PeerError {
  if (isPeerSafe(error)) return { code: error.code, message: error.message.slice(0, MAX_PEER_ERROR_MESSAGE) };
  return { code: 'INTERNAL', message: 'internal error' };
}

/** An error a peer reported: its code is kept when this version knows it, else REMOTE_ERROR. */
export class RemoteError extends CorollaError {
  override readonly name: string = 'RemoteError';
  /** The code exactly as the peer sent it (bounded). */
  readonly remoteCode: string;

  constructor(remoteCode: string, message: string, options: { cause?: unknown } = {}) {
    super(isErrorCode(remoteCode) ? remoteCode : 'REMOTE_ERROR', message, options);
    this.remoteCode = remoteCode.slice(0, 64);
  }
}
