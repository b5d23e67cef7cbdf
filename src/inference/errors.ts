/** Errors of the inference layer: sampling options and sampling itself. */
import { CorollaError } from '../errors.js';

/** Invalid sampling options. */
export class InvalidSamplingOptionsError extends CorollaError {
  override readonly name = 'InvalidSamplingOptionsError';
  constructor(message: string) {
    super('INVALID_SAMPLING_OPTIONS', `invalid sampling options: ${message}`);
  }
}

/** No token can be sampled: the logits are empty, or all NaN / −Infinity. */
export class NoValidTokenError extends CorollaError {
  override readonly name = 'NoValidTokenError';
  constructor(message: string) {
    super('SAMPLING_NO_VALID_TOKEN', message);
  }
}

/** A chat conversation and its reply do not fit the context even in a new session. */
export class ContextOverflowError extends CorollaError {
  override readonly name = 'ContextOverflowError';
  constructor(readonly tokens: number, readonly context: number) {
    super('REQUEST_TOO_LARGE', `the conversation and its reply need ${tokens} tokens, more than the context of ${context}`);
  }
}
