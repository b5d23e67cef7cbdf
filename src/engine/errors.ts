import { CorollaError } from '../errors.js';

/** Opening a session would exceed the span's KV-cache budget. */
export class CacheBudgetError extends CorollaError {
  override readonly name = 'CacheBudgetError';
  constructor(readonly requestedTokens: number, readonly tokensLeft: number) {
    super('CACHE_FULL', `not enough KV-cache memory: a session of ${requestedTokens} tokens was requested but only ${tokensLeft} tokens are left in the budget`);
  }
}

export class UnknownSessionError extends CorollaError {
  override readonly name = 'UnknownSessionError';
  constructor(readonly sessionId: string) {
    super('UNKNOWN_SESSION', `no open session "${sessionId}"`);
  }
}

export class DuplicateSessionError extends CorollaError {
  override readonly name = 'DuplicateSessionError';
  constructor(readonly sessionId: string) {
    super('DUPLICATE_SESSION', `session "${sessionId}" is already open`);
  }
}

/** A step does not fit the session: wrong hidden size, beyond max_length, or a position in the future. */
export class InvalidStepError extends CorollaError {
  override readonly name = 'InvalidStepError';
  constructor(message: string) {
    super('INVALID_STEP', message);
  }
}

/** The requested block range does not fit the model. */
export class InvalidSpanError extends CorollaError {
  override readonly name = 'InvalidSpanError';
  constructor(message: string) {
    super('INVALID_SPAN', message);
  }
}

/** onnxruntime failed to build or run a graph. */
export class KernelError extends CorollaError {
  override readonly name = 'KernelError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('KERNEL_ERROR', message, options);
  }
}

/** A session (or a forward) longer than the model's context: positions beyond it were never trained. */
export class ContextLengthError extends CorollaError {
  override readonly name = 'ContextLengthError';
  constructor(readonly requestedTokens: number, readonly contextLength: number) {
    super('REQUEST_TOO_LARGE', `a session of ${requestedTokens} tokens exceeds the model's context of ${contextLength} tokens`);
  }
}
