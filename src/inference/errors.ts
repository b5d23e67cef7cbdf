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

/** A prompt and the tokens to generate after it do not fit the model's context. */
export class PromptTooLongError extends CorollaError {
  override readonly name = 'PromptTooLongError';
  constructor(readonly promptTokens: number, readonly maxTokens: number, readonly context: number) {
    super(
      'REQUEST_TOO_LARGE',
      `a prompt of ${promptTokens} tokens plus up to ${maxTokens} generated tokens needs ${promptTokens + maxTokens} tokens, more than the model's context of ${context}; shorten the prompt or lower maxTokens`,
    );
  }
}

/** A perplexity run that cannot be scored: too few tokens, or a base model with another vocabulary. */
export class PerplexityInputError extends CorollaError {
  override readonly name = 'PerplexityInputError';
  constructor(message: string) {
    super('INVALID_REQUEST', message);
  }
}
