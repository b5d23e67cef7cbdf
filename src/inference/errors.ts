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
