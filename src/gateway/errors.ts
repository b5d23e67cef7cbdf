/**
 * Errors the gateway answers HTTP clients with. Each maps to an HTTP status through ERROR_CODES and to the OpenAI
 * error shape `{"error":{"message","type","param","code"}}` through `errorBody`.
 */
import { CorollaError, ERROR_CODES, isPeerSafe, type ErrorCode } from '../errors.js';

/** A request body or query that is malformed, of the wrong type, or out of range. `param` names the field. */
export class InvalidRequestError extends CorollaError {
  override readonly name = 'InvalidRequestError';
  /** The OpenAI error code, when a more precise one than invalid_request applies (context_length_exceeded). */
  readonly openaiCode?: string;
  constructor(message: string, readonly param: string | null = null, options: { cause?: unknown; openaiCode?: string } = {}) {
    super('INVALID_REQUEST', message, options);
    if (options.openaiCode) this.openaiCode = options.openaiCode;
  }
}

/** A field that would change the result but is not supported (never silently ignored). */
export class UnsupportedParameterError extends CorollaError {
  override readonly name = 'UnsupportedParameterError';
  constructor(readonly param: string, reason: string) {
    super('UNSUPPORTED_PARAMETER', `"${param}" is not supported: ${reason}`);
  }
}

export class UnknownModelError extends CorollaError {
  override readonly name = 'UnknownModelError';
  constructor(readonly model: string, available: readonly string[]) {
    super('UNKNOWN_MODEL', `the model "${model.slice(0, 200)}" does not exist here; available: ${available.join(', ') || 'none'}`);
  }
}

/** The model is known but its servers do not cover every block right now. */
export class ModelUnavailableError extends CorollaError {
  override readonly name = 'ModelUnavailableError';
  constructor(readonly model: string, reason: string, options: { cause?: unknown } = {}) {
    super('SWARM_UNAVAILABLE', `the model "${model}" is not servable right now: ${reason}`, options);
  }
}

export class UnauthorizedError extends CorollaError {
  override readonly name = 'UnauthorizedError';
  constructor(message: string) {
    super('UNAUTHORIZED', message);
  }
}

export class ForbiddenError extends CorollaError {
  override readonly name = 'ForbiddenError';
  constructor(message: string) {
    super('FORBIDDEN', message);
  }
}

export class RateLimitedError extends CorollaError {
  override readonly name = 'RateLimitedError';
  constructor(readonly limit: 'requests' | 'tokens', readonly retryAfterMs: number) {
    super('RATE_LIMITED', `rate limit reached (${limit} per minute); retry after ${Math.ceil(retryAfterMs / 1000)} s`);
  }
}

export class RequestIdTakenError extends CorollaError {
  override readonly name = 'RequestIdTakenError';
  constructor(readonly requestId: string) {
    super('REQUEST_ID_TAKEN', `request id "${requestId.slice(0, 200)}" was already used`);
  }
}

export class UnknownRequestError extends CorollaError {
  override readonly name = 'UnknownRequestError';
  constructor(readonly requestId: string) {
    super('UNKNOWN_REQUEST', `no usage record has the id "${requestId.slice(0, 200)}"`);
  }
}

export class LedgerError extends CorollaError {
  override readonly name = 'LedgerError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LEDGER_FAILED', message, options);
  }
}

export class SharedStateError extends CorollaError {
  override readonly name = 'SharedStateError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SHARED_STATE_FAILED', message, options);
  }
}

/** The OpenAI error shape. */
export interface ErrorBody {
  readonly error: { readonly message: string; readonly type: string; readonly param: string | null; readonly code: string | null };
}

const OPENAI_TYPES: Partial<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  409: 'invalid_request_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable',
};

const OPENAI_CODES: Partial<Record<ErrorCode, string>> = {
  UNKNOWN_MODEL: 'model_not_found',
  UNAUTHORIZED: 'invalid_api_key',
  RATE_LIMITED: 'rate_limit_exceeded',
  REQUEST_TOO_LARGE: 'context_length_exceeded',
  UNSUPPORTED_PARAMETER: 'unsupported_parameter',
};

/** HTTP status and body for any error: ours keep their message; anything else is a 500 "internal error". */
export function errorBody(error: unknown): { status: number; body: ErrorBody } {
  if (!isPeerSafe(error)) {
    return { status: 500, body: { error: { message: 'internal error', type: 'server_error', param: null, code: 'internal_error' } } };
  }
  const status = ERROR_CODES[error.code].httpStatus;
  const { param, openaiCode } = error as { param?: unknown; openaiCode?: unknown };
  return {
    status,
    body: {
      error: {
        message: error.message,
        type: OPENAI_TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'),
        param: typeof param === 'string' ? param : null,
        code: typeof openaiCode === 'string' ? openaiCode : (OPENAI_CODES[error.code] ?? error.code.toLowerCase()),
      },
    },
  };
}
