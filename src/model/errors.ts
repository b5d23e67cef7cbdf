import { CorollaError } from '../errors.js';

/** The file is not what its format promises: bad magic, truncated, inconsistent sizes. */
export class CorruptModelError extends CorollaError {
  override readonly name = 'CorruptModelError';
  constructor(file: string, reason: string, options: { cause?: unknown } = {}) {
    super('MODEL_CORRUPT', `${file}: corrupt or truncated model file: ${reason}`, options);
  }
}

/** The file is well-formed but uses an architecture we do not run. */
export class UnsupportedArchitectureError extends CorollaError {
  override readonly name = 'UnsupportedArchitectureError';
  constructor(architecture: string) {
    super('MODEL_UNSUPPORTED_ARCHITECTURE', `unsupported model architecture "${architecture}" (supported: the Llama family: llama, mistral, qwen2, smollm)`);
  }
}

/** The file is well-formed but stores a tensor in a quantization type we cannot run. */
export class UnsupportedQuantizationError extends CorollaError {
  override readonly name = 'UnsupportedQuantizationError';
  constructor(tensor: string, type: string) {
    super('MODEL_UNSUPPORTED_QUANT', `tensor "${tensor}" uses unsupported type ${type} (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)`);
  }
}

/** A required tensor or metadata key is missing. */
export class MissingTensorError extends CorollaError {
  override readonly name = 'MissingTensorError';
  constructor(what: string) {
    super('MODEL_MISSING_TENSOR', `model is missing ${what}`);
  }
}

/** The model could not be located (path does not exist, Hub repo or file not found). */
export class ModelNotFoundError extends CorollaError {
  override readonly name = 'ModelNotFoundError';
  constructor(what: string, options: { cause?: unknown } = {}) {
    super('MODEL_NOT_FOUND', `model not found: ${what}`, options);
  }
}

/** The Hub answered with an error other than "not found", or could not be reached. */
export class HubDownloadError extends CorollaError {
  override readonly name = 'HubDownloadError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('MODEL_DOWNLOAD_FAILED', message, options);
  }
}

/** `make-model` was asked for something it cannot build, or its tokenizer source is missing. */
export class MakeModelError extends CorollaError {
  override readonly name = 'MakeModelError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('MAKE_MODEL_FAILED', message, options);
  }
}

/**
 * A row length or buffer does not fit a type's blocks. A programming or file error, never user input, so it is a
 * plain Error: a peer only ever sees it as INTERNAL.
 */
export class QuantShapeError extends Error {
  override readonly name = 'QuantShapeError';
}
