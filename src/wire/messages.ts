/**
 * Block-server protocol messages. A message is one frame (frames.ts): a UTF-8 JSON header whose `type` picks the
 * schema below, plus, for the four tensor-carrying types, a binary payload holding the tensor described by
 * `header.tensor` (tensor-codec.ts). Validation is strict: unknown types, unknown fields, missing fields, wrong types,
 * non-integers, out-of-range numbers, inconsistent shapes and payload sizes are all rejected with
 * MalformedMessageError (code 'MALFORMED'). Adding a field is therefore a protocol version change (protocol.ts).
 *
 * Requests → replies:
 *   open     {sessionId, maxLength, spanStart, spanEnd, codec}         → opened {sessionId, position, cacheTokensLeft}
 *   step     {sessionId, stepId, position, tokens, tensor} + payload   → stepResult {sessionId, stepId, position, tensor} + payload
 *   forward  {requestId, spanStart, spanEnd, tensor} + payload         → forwardResult {requestId, tensor} + payload
 *   close    {sessionId}                                               → closed {sessionId}
 *   ping     {nonce}                                                   → pong {nonce}
 * Any request may instead be answered by error {code, message, sessionId?, stepId?, requestId?}.
 *
 * Hidden-state tensors are always rank 2, `[tokens, hidden]`, both ≥ 1.
 */
import { toPeerError } from '../errors.js';
import { MalformedMessageError } from './errors.js';
import { allocateFrame, splitFrame, type FrameOptions } from './frames.js';
import {
  DEFAULT_MAX_TENSOR_ELEMENTS,
  decodeTensor,
  encodeTensorInto,
  encodedByteLength,
  isWireDtype,
  type WireDtype,
} from './tensor-codec.js';

/** Cap on the UTF-8 header of a message. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Cap on a session's maxLength, and on position + tokens of a step. */
export const MAX_SESSION_LENGTH = 1_000_000;
/** Cap on block indices (spanEnd). */
export const MAX_BLOCK_INDEX = 1_000_000;
/** Cap on an error message's length in UTF-16 code units. */
export const MAX_ERROR_MESSAGE_LENGTH = 4096;
/** Session and request ids: 1..128 of [A-Za-z0-9_-]. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** Error codes: 1..64 of [A-Za-z0-9_.:-]. */
export const ERROR_CODE_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export type Codec = WireDtype;

/** Describes the payload tensor: dtype and row-major shape `[tokens, hidden]`. */
export interface TensorMeta {
  readonly dtype: WireDtype;
  readonly shape: readonly number[];
}

export interface OpenMessage {
  readonly type: 'open';
  readonly sessionId: string;
  readonly maxLength: number;
  readonly spanStart: number;
  readonly spanEnd: number;
  /** Codec the client will use for step tensors and wants for replies. */
  readonly codec: Codec;
}
export interface OpenedMessage {
  readonly type: 'opened';
  readonly sessionId: string;
  /** Position of the next token (0 for a fresh session). */
  readonly position: number;
  readonly cacheTokensLeft: number;
}
export interface StepMessage {
  readonly type: 'step';
  readonly sessionId: string;
  readonly stepId: number;
  /** Position of the first of `tokens` rows. */
  readonly position: number;
  readonly tokens: number;
  /** shape must be [tokens, hidden]. */
  readonly tensor: TensorMeta;
}
export interface StepResultMessage {
  readonly type: 'stepResult';
  readonly sessionId: string;
  readonly stepId: number;
  readonly position: number;
  readonly tensor: TensorMeta;
}
export interface ForwardMessage {
  readonly type: 'forward';
  readonly requestId: string;
  readonly spanStart: number;
  readonly spanEnd: number;
  readonly tensor: TensorMeta;
}
export interface ForwardResultMessage {
  readonly type: 'forwardResult';
  readonly requestId: string;
  readonly tensor: TensorMeta;
}
export interface CloseMessage {
  readonly type: 'close';
  readonly sessionId: string;
}
export interface ClosedMessage {
  readonly type: 'closed';
  readonly sessionId: string;
}
export interface ErrorMessage {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
  readonly sessionId?: string;
  readonly stepId?: number;
  readonly requestId?: string;
}
export interface PingMessage {
  readonly type: 'ping';
  readonly nonce: number;
}
export interface PongMessage {
  readonly type: 'pong';
  readonly nonce: number;
}

export type Message =
  | OpenMessage
  | OpenedMessage
  | StepMessage
  | StepResultMessage
  | ForwardMessage
  | ForwardResultMessage
  | CloseMessage
  | ClosedMessage
  | ErrorMessage
  | PingMessage
  | PongMessage;

export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;
export type TensorMessage = Extract<Message, { tensor: TensorMeta }>;

/** What `encodeMessage` accepts: a message whose `tensor` meta may be left out (it is taken from the tensor). */
export type MessageInput = Message extends infer M
  ? M extends { tensor: TensorMeta }
    ? Omit<M, 'tensor'> & { readonly tensor?: TensorMeta }
    : M
  : never;

export const MESSAGE_TYPES: readonly MessageType[] = Object.freeze([
  'open',
  'opened',
  'step',
  'stepResult',
  'forward',
  'forwardResult',
  'close',
  'closed',
  'error',
  'ping',
  'pong',
] as const);

const TENSOR_TYPES: ReadonlySet<string> = new Set(['step', 'stepResult', 'forward', 'forwardResult']);

/** True for the message types that carry a tensor payload. */
export function carriesTensor(type: MessageType): type is TensorMessage['type'] {
  return TENSOR_TYPES.has(type);
}

export interface DecodedMessage {
  readonly header: Message;
  /** Present exactly when the header's type carries a tensor; shape is `header.tensor.shape`. */
  readonly tensor?: Float32Array;
}

export interface MessageOptions extends FrameOptions {
  /** Cap on the elements of a message's tensor. Default 2^25. */
  readonly maxTensorElements?: number;
}

export interface TensorInput {
  readonly data: Float32Array;
  readonly shape: readonly number[];
  readonly dtype: WireDtype;
}

// ---------------------------------------------------------------------------------------------------------------
// Field validators

type Obj = Record<string, unknown>;
type Check = (value: unknown, field: string, ctx: ValidationContext) => unknown;
interface ValidationContext {
  readonly maxTensorElements: number;
}

function fail(message: string): never {
  throw new MalformedMessageError(message);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number') return `number ${value}`;
  return typeof value;
}

function intIn(min: number, max: number): Check {
  return (value, field) => {
    if (typeof value !== 'number' || !Number.isInteger(value)) fail(`${field} must be an integer, got ${describe(value)}`);
    if (value < min || value > max) fail(`${field} must be in ${min}..${max}, got ${value}`);
    return value;
  };
}

const id: Check = (value, field) => {
  if (typeof value !== 'string') fail(`${field} must be a string, got ${describe(value)}`);
  if (!ID_PATTERN.test(value)) fail(`${field} must be 1..128 characters of [A-Za-z0-9_-], got ${describe(value)}`);
  return value;
};

const nonNegative = intIn(0, Number.MAX_SAFE_INTEGER);
const blockIndex = intIn(0, MAX_BLOCK_INDEX);
const position = intIn(0, MAX_SESSION_LENGTH);
const positiveLength = intIn(1, MAX_SESSION_LENGTH);

const codec: Check = (value, field) => {
  if (!isWireDtype(value)) fail(`${field} must be one of f32, f16, int8, got ${describe(value)}`);
  return value;
};

const errorCode: Check = (value, field) => {
  if (typeof value !== 'string') fail(`${field} must be a string, got ${describe(value)}`);
  if (!ERROR_CODE_PATTERN.test(value)) fail(`${field} must be 1..64 characters of [A-Za-z0-9_.:-]`);
  return value;
};

const errorText: Check = (value, field) => {
  if (typeof value !== 'string') fail(`${field} must be a string, got ${describe(value)}`);
  if (value.length > MAX_ERROR_MESSAGE_LENGTH) fail(`${field} is longer than ${MAX_ERROR_MESSAGE_LENGTH} characters`);
  return value;
};

const tensorMeta: Check = (value, field, ctx) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`${field} must be an object {dtype, shape}, got ${describe(value)}`);
  }
  const obj = value as Obj;
  for (const key of Object.keys(obj)) {
    if (key !== 'dtype' && key !== 'shape') fail(`${field} has unknown field "${truncate(key)}"`);
  }
  if (!('dtype' in obj)) fail(`${field}.dtype is missing`);
  if (!('shape' in obj)) fail(`${field}.shape is missing`);
  const dtype = codec(obj.dtype, `${field}.dtype`, ctx) as WireDtype;
  const shape = obj.shape;
  if (!Array.isArray(shape)) fail(`${field}.shape must be an array, got ${describe(shape)}`);
  if (shape.length !== 2) fail(`${field}.shape must be [tokens, hidden] (rank 2), got rank ${shape.length}`);
  const tokens = intIn(1, MAX_SESSION_LENGTH)(shape[0], `${field}.shape[0]`, ctx) as number;
  const hidden = intIn(1, ctx.maxTensorElements)(shape[1], `${field}.shape[1]`, ctx) as number;
  if (tokens * hidden > ctx.maxTensorElements) {
    fail(`${field}.shape [${tokens}, ${hidden}] has more than ${ctx.maxTensorElements} elements`);
  }
  return { dtype, shape: [tokens, hidden] } satisfies TensorMeta;
};

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

interface Schema {
  readonly required: Readonly<Record<string, Check>>;
  readonly optional?: Readonly<Record<string, Check>>;
  /** Cross-field checks on the validated message. */
  readonly refine?: (message: Obj) => void;
}

function spanOrder(message: Obj): void {
  if ((message.spanStart as number) >= (message.spanEnd as number)) {
    fail(`spanStart (${message.spanStart}) must be less than spanEnd (${message.spanEnd})`);
  }
}

const SCHEMAS: Readonly<Record<MessageType, Schema>> = {
  open: {
    required: { sessionId: id, maxLength: positiveLength, spanStart: blockIndex, spanEnd: blockIndex, codec },
    refine: spanOrder,
  },
  opened: { required: { sessionId: id, position, cacheTokensLeft: nonNegative } },
  step: {
    required: { sessionId: id, stepId: nonNegative, position, tokens: positiveLength, tensor: tensorMeta },
    refine: (m) => {
      const tensor = m.tensor as TensorMeta;
      if (tensor.shape[0] !== m.tokens) {
        fail(`tensor.shape[0] (${tensor.shape[0]}) must equal tokens (${m.tokens})`);
      }
      if ((m.position as number) + (m.tokens as number) > MAX_SESSION_LENGTH) {
        fail(`position + tokens (${(m.position as number) + (m.tokens as number)}) exceeds ${MAX_SESSION_LENGTH}`);
      }
    },
  },
  stepResult: { required: { sessionId: id, stepId: nonNegative, position, tensor: tensorMeta } },
  forward: {
    required: { requestId: id, spanStart: blockIndex, spanEnd: blockIndex, tensor: tensorMeta },
    refine: spanOrder,
  },
  forwardResult: { required: { requestId: id, tensor: tensorMeta } },
  close: { required: { sessionId: id } },
  closed: { required: { sessionId: id } },
  error: {
    required: { code: errorCode, message: errorText },
    optional: { sessionId: id, stepId: nonNegative, requestId: id },
  },
  ping: { required: { nonce: nonNegative } },
  pong: { required: { nonce: nonNegative } },
};

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Validates a parsed header (or a message about to be sent) and returns a fresh, canonical copy holding exactly
 * the schema's fields. Throws MalformedMessageError naming the first offending field.
 */
export function validateMessage(value: unknown, options: { maxTensorElements?: number } = {}): Message {
  const ctx: ValidationContext = { maxTensorElements: options.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`header must be a JSON object, got ${describe(value)}`);
  }
  const obj = value as Obj;
  const type = obj.type;
  if (typeof type !== 'string') fail(`header.type must be a string, got ${describe(type)}`);
  if (!hasOwn.call(SCHEMAS, type)) fail(`unknown message type ${JSON.stringify(truncate(type))}`);
  const schema = SCHEMAS[type as MessageType];
  const out: Obj = { type };
  for (const key of Object.keys(obj)) {
    if (key === 'type') continue;
    if (!hasOwn.call(schema.required, key) && !(schema.optional && hasOwn.call(schema.optional, key))) {
      fail(`${type}: unknown field ${JSON.stringify(truncate(key))}`);
    }
  }
  for (const key of Object.keys(schema.required)) {
    const field = obj[key];
    if (field === undefined || !hasOwn.call(obj, key)) fail(`${type}: missing field "${key}"`);
    out[key] = schema.required[key]!(field, `${type}.${key}`, ctx);
  }
  if (schema.optional) {
    for (const key of Object.keys(schema.optional)) {
      if (!hasOwn.call(obj, key) || obj[key] === undefined) continue;
      out[key] = schema.optional[key]!(obj[key], `${type}.${key}`, ctx);
    }
  }
  schema.refine?.(out);
  return out as unknown as Message;
}

// ---------------------------------------------------------------------------------------------------------------
// Encode / decode

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Encodes a message into one frame (length prefix included). For tensor-carrying types `tensor` is required, and
 * `header.tensor` may be omitted (it is derived from `tensor`) or must agree with it; other types take no tensor.
 * The header is validated exactly as the receiver will validate it. Throws MalformedMessageError (invalid header,
 * header over 16 KiB, tensor mismatch), FrameTooLargeError, MalformedTensorError / NonFiniteTensorError /
 * UnsupportedCodecError (from the codec).
 */
export function encodeMessage(header: MessageInput, tensor?: TensorInput, options: MessageOptions = {}): Uint8Array {
  const type = (header as { type?: unknown }).type;
  let full: Obj = header as unknown as Obj;
  if (typeof type === 'string' && TENSOR_TYPES.has(type)) {
    if (!tensor) fail(`${type} needs a tensor`);
    const meta = { dtype: tensor.dtype, shape: [...tensor.shape] };
    const given = (header as { tensor?: TensorMeta }).tensor;
    if (given !== undefined) {
      if (
        typeof given !== 'object' ||
        given === null ||
        given.dtype !== meta.dtype ||
        !Array.isArray(given.shape) ||
        given.shape.length !== meta.shape.length ||
        given.shape.some((d, i) => d !== meta.shape[i])
      ) {
        fail(`${type}: header.tensor ${JSON.stringify(given)} disagrees with the tensor (${JSON.stringify(meta)})`);
      }
    }
    full = { ...(header as unknown as Obj), tensor: meta };
  } else if (tensor) {
    fail(`${String(type)} carries no tensor`);
  }
  const message = validateMessage(full, { maxTensorElements: options.maxTensorElements });
  const headerBytes = utf8Encoder.encode(JSON.stringify(message));
  if (headerBytes.length > MAX_HEADER_BYTES) fail(`header of ${headerBytes.length} bytes exceeds ${MAX_HEADER_BYTES}`);
  if (!tensor) return allocateFrame(headerBytes, 0, options).frame;
  const meta = (message as TensorMessage).tensor;
  if (tensor.data.length !== meta.shape[0]! * meta.shape[1]!) {
    fail(`tensor data has ${tensor.data.length} elements, shape [${meta.shape.join(', ')}] needs ${meta.shape[0]! * meta.shape[1]!}`);
  }
  const { frame, payload } = allocateFrame(headerBytes, encodedByteLength(meta.dtype, meta.shape), options);
  encodeTensorInto(tensor.data, meta.shape, meta.dtype, payload, 0);
  return frame;
}

/**
 * Decodes and validates one frame (as produced by encodeMessage / yielded by FrameDecoder). Throws
 * MalformedMessageError (code 'MALFORMED') for anything wrong with it, with the codec's error as `cause` where
 * the tensor payload is at fault, or FrameTooLargeError when the frame exceeds `maxFrameBytes`.
 */
export function decodeMessage(frame: Uint8Array, options: MessageOptions = {}): DecodedMessage {
  const { header: headerBytes, payload } = splitFrame(frame, options);
  if (headerBytes.length === 0) fail('empty header');
  if (headerBytes.length > MAX_HEADER_BYTES) fail(`header of ${headerBytes.length} bytes exceeds ${MAX_HEADER_BYTES}`);
  let text: string;
  try {
    text = utf8Decoder.decode(headerBytes);
  } catch (cause) {
    throw new MalformedMessageError('header is not valid UTF-8', { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new MalformedMessageError(`header is not JSON (${(cause as Error).message})`, { cause });
  }
  const maxTensorElements = options.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS;
  const header = validateMessage(parsed, { maxTensorElements });
  if (!TENSOR_TYPES.has(header.type)) {
    if (payload.length !== 0) fail(`${header.type} carries no tensor, but has a ${payload.length}-byte payload`);
    return { header };
  }
  const meta = (header as TensorMessage).tensor;
  let tensor: Float32Array;
  try {
    tensor = decodeTensor(payload, meta.shape, meta.dtype, { maxElements: maxTensorElements });
  } catch (cause) {
    throw new MalformedMessageError(`${header.type} tensor: ${(cause as Error).message}`, { cause });
  }
  return { header, tensor };
}

/**
 * Builds the `error` reply for a failure: its code and message (via toPeerError, message truncated to fit), and
 * the ids of the request it answers (invalid ids are left out). The result always passes validation.
 */
export function errorMessage(
  error: unknown,
  ids: { sessionId?: string; stepId?: number; requestId?: string } = {},
): ErrorMessage {
  const { code, message } = toPeerError(error);
  const safeCode = ERROR_CODE_PATTERN.test(code) ? code : 'INTERNAL';
  const text = message.length > MAX_ERROR_MESSAGE_LENGTH ? `${message.slice(0, MAX_ERROR_MESSAGE_LENGTH - 1)}…` : message;
  const out: { -readonly [K in keyof ErrorMessage]: ErrorMessage[K] } = { type: 'error', code: safeCode, message: text };
  // Ids echo what the peer sent; drop any that would make the reply itself invalid.
  if (typeof ids.sessionId === 'string' && ID_PATTERN.test(ids.sessionId)) out.sessionId = ids.sessionId;
  if (Number.isSafeInteger(ids.stepId) && ids.stepId! >= 0) out.stepId = ids.stepId;
  if (typeof ids.requestId === 'string' && ID_PATTERN.test(ids.requestId)) out.requestId = ids.requestId;
  return out;
}
