import { CorollaError } from '../errors.js';

/**
 * Wire-level failures. Every error that bytes from a peer can provoke in src/wire/ is one of these (all extend
 * CorollaError), so a stream handler can reply with `toPeerError(e)` and drop the stream without a crash.
 */

/** A frame or message does not follow the protocol: bad JSON, unknown type, wrong field, size inconsistency. */
export class MalformedMessageError extends CorollaError {
  override readonly name: string = 'MalformedMessageError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('MALFORMED', `malformed message: ${message}`, options);
  }
}

/** A message too short to be a frame (empty, or under the 6-byte minimum): junk, or a stream out of step. */
export class TinyMessageError extends MalformedMessageError {
  override readonly name: string = 'TinyMessageError';
}

/**
 * A frame's declared length exceeds the configured maximum. Raised from the 4-byte length prefix alone, before
 * any buffer for the frame is allocated. The stream cannot be resynchronised after this: close it.
 */
export class FrameTooLargeError extends CorollaError {
  override readonly name: string = 'FrameTooLargeError';
  readonly frameBytes: number;
  readonly maxFrameBytes: number;
  constructor(frameBytes: number, maxFrameBytes: number) {
    super('FRAME_TOO_LARGE', `frame of ${frameBytes} bytes exceeds the limit of ${maxFrameBytes} bytes`);
    this.frameBytes = frameBytes;
    this.maxFrameBytes = maxFrameBytes;
  }
}

/** The byte stream ended in the middle of a frame. */
export class TruncatedFrameError extends CorollaError {
  override readonly name: string = 'TruncatedFrameError';
  constructor(receivedBytes: number, expectedBytes: number | undefined) {
    super(
      'FRAME_TRUNCATED',
      expectedBytes === undefined
        ? `stream ended inside a frame (${receivedBytes} bytes of an incomplete frame)`
        : `stream ended inside a frame (${receivedBytes} of ${expectedBytes} bytes)`,
    );
  }
}

/** A tensor dtype (codec) that this build does not implement. */
export class UnsupportedCodecError extends CorollaError {
  override readonly name: string = 'UnsupportedCodecError';
  constructor(dtype: unknown) {
    super('UNSUPPORTED_CODEC', `unsupported tensor codec ${JSON.stringify(String(dtype))} (supported: f32, f16, int8)`);
  }
}

/** A tensor's bytes do not match its declared shape and dtype, or carry invalid values (e.g. a NaN int8 scale). */
export class MalformedTensorError extends CorollaError {
  override readonly name: string = 'MalformedTensorError';
  constructor(message: string) {
    super('MALFORMED_TENSOR', `malformed tensor: ${message}`);
  }
}

/** A tensor has more elements than the configured maximum. */
export class TensorTooLargeError extends CorollaError {
  override readonly name: string = 'TensorTooLargeError';
  constructor(elements: number, maxElements: number) {
    super('TENSOR_TOO_LARGE', `tensor of ${elements} elements exceeds the limit of ${maxElements} elements`);
  }
}

/** A tensor to be encoded holds a value the codec cannot represent (NaN or ±Infinity under int8). */
export class NonFiniteTensorError extends CorollaError {
  override readonly name: string = 'NonFiniteTensorError';
  constructor(index: number, value: number) {
    super('TENSOR_NON_FINITE', `cannot encode non-finite value ${value} at element ${index} with the int8 codec`);
  }
}

/** A whole-model generate request that does not follow the generate protocol (wire/generate.ts). */
export class InvalidGenerateRequestError extends CorollaError {
  override readonly name = 'InvalidGenerateRequestError';
  constructor(message: string) {
    super('INVALID_REQUEST', `invalid generate request: ${message}`);
  }
}

/** A generate request longer than the server accepts (bytes, or prompt + maxTokens). */
export class GenerateRequestTooLargeError extends CorollaError {
  override readonly name = 'GenerateRequestTooLargeError';
  constructor(message: string) {
    super('REQUEST_TOO_LARGE', message);
  }
}
