/**
 * Block-server protocol messages. A message is one frame (frames.ts): a UTF-8 JSON header whose `type` picks the
 * schema below, plus, for the five tensor-carrying types, a binary payload holding the tensor described by
 * `header.tensor` (tensor-codec.ts). Validation is strict: unknown types, unknown fields, missing fields, wrong types,
 * non-integers, out-of-range numbers, inconsistent shapes and payload sizes are all rejected with
 * MalformedMessageError (code 'MALFORMED'). Adding a field is therefore a minor protocol version, negotiated through
 * the protocol id (protocols.ts, docs/protocols.md).
 *
 * Requests → replies:
 *   open     {sessionId, maxLength, spanStart, spanEnd, codec}         → opened {sessionId, position, cacheTokensLeft}
 *   step     {sessionId, stepId, position, tokens, next?, tensor} + payload → stepResult {sessionId, stepId, position, forwarded?, computeMs?, serverMs?, tensor} + payload
 *   push     {client, sessionId, stepId, position, tokens, next?, tensor} + payload → pushed {sessionId, stepId}   (server → server)
 *   forward  {requestId, spanStart, spanEnd, tensor} + payload         → forwardResult {requestId, tensor} + payload
 *   close    {sessionId}                                               → closed {sessionId}
 *   ping     {nonce}                                                   → pong {nonce}
 * Any request may instead be answered by error {code, message, sessionId?, stepId?, requestId?}.
 *
 * Hidden-state tensors are always rank 2, `[tokens, hidden]`, both ≥ 1.
 *
 * Forwarding (docs/protocols.md): a client opens each hop naming its `upstream` (the previous hop's peer id) and
 * sends a step to the first hop with `next`, the later hops of the chain. Each server runs the step, `push`es its
 * output to the next hop (which accepts it only from the upstream its client named, and validates it as a step), and
 * answers the client on the client's own stream; the client so hears every hop without a round trip per hop.
 */
import { toPeerError } from '../errors.js';
import { MalformedMessageError } from './errors.js';
import { allocateFrame, splitFrame, type FrameOptions } from './frames.js';
import { checkSchema, describeValue, intIn, numberIn, oneOf, strictObject, text, token, z } from './schema.js';
import {
  DEFAULT_MAX_TENSOR_ELEMENTS,
  WIRE_DTYPES,
  decodeTensor,
  encodeTensorInto,
  encodedByteLength,
  type WireDtype,
} from './tensor-codec.js';

/** Cap on the UTF-8 header of a message. */
export const MAX_HEADER_BYTES = 16 * 1024;
/**
 * Cap on the tokens of one `step` (and the rows of a server's `forward`): the unit of bounded work per request.
 * Servers derive their frame limit from it (hiddenSize × MAX_STEP_TOKENS × 4 bytes + header); clients chunk longer
 * prefills into steps of at most this many tokens. Shared by name with the prefill-chunking work of issue 7.
 */
export const MAX_STEP_TOKENS = 4096;
/** Cap on a session's maxLength, and on position + tokens of a step. */
export const MAX_SESSION_LENGTH = 1_000_000;
/** Cap on block indices (spanEnd). */
export const MAX_BLOCK_INDEX = 1_000_000;
/** Cap on an error message's length in UTF-16 code units. */
export const MAX_ERROR_MESSAGE_LENGTH = 4096;
/** Session and request ids: 1..128 of [A-Za-z0-9_-]. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** libp2p peer ids as strings (base58btc or a base32/base36 CID): 1..128 of [A-Za-z0-9]. */
export const PEER_ID_PATTERN = /^[A-Za-z0-9]{1,128}$/;
/** Most later hops a forwarded step may name (a longer chain is split by the client). */
export const MAX_FORWARD_HOPS = 32;
/** Most addresses given for one next hop, and the longest one. */
export const MAX_NEXT_ADDRS = 8;
export const MAX_ADDR_LENGTH = 256;
/** Ceiling of the timings a server reports (ms). */
const MAX_REPORTED_MS = 3_600_000;
/** Error codes: 1..64 of [A-Za-z0-9_.:-]. */
export const ERROR_CODE_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Ceiling of a tensor's hidden width in the schema; the real cap is the product check against maxTensorElements. */
const MAX_HIDDEN = 2 ** 32;

export type Codec = WireDtype;

// ---------------------------------------------------------------------------------------------------------------
// Schemas (one per message type; the types below are derived from them)

const ATTESTATION_PATTERN = /^[A-Za-z0-9_-]{86}$/;
const id = token(ID_PATTERN, '1..128 characters of [A-Za-z0-9_-]');
const nonNegative = intIn(0);
const blockIndex = intIn(0, MAX_BLOCK_INDEX);
const position = intIn(0, MAX_SESSION_LENGTH);
const positiveLength = intIn(1, MAX_SESSION_LENGTH);
const peerId = token(PEER_ID_PATTERN, '1..128 characters of [A-Za-z0-9] (a peer id)');
const reportedMs = numberIn(0, MAX_REPORTED_MS);
const codec = oneOf(WIRE_DTYPES as readonly WireDtype[] as ['f32', 'f16', 'int8']);

/** Describes the payload tensor: dtype and row-major shape `[tokens, hidden]`. */
const tensorMeta = strictObject(
  {
    dtype: codec,
    shape: z.tuple([positiveLength, intIn(1, MAX_HIDDEN)], {
      error: (issue) => (issue.code === 'invalid_type' ? 'must be an array' : 'must be [tokens, hidden] (rank 2)'),
    }),
  },
  'an object {dtype, shape}',
);

/** The fields of an error reply; the generate protocol's `{error}` message uses the same ones. */
export const ERROR_FIELDS = {
  code: token(ERROR_CODE_PATTERN, '1..64 characters of [A-Za-z0-9_.:-]'),
  message: z.string({ error: 'must be a string' }).max(MAX_ERROR_MESSAGE_LENGTH, { error: `is longer than ${MAX_ERROR_MESSAGE_LENGTH} characters` }),
};

/** One later hop of a forwarded step: the server, the client's session there, and the step id the client expects. */
const nextHop = strictObject(
  {
    peerId,
    sessionId: id,
    stepId: nonNegative,
    /** Where to dial it (from its record), when the forwarding server does not know it yet. */
    addrs: z.array(text(1, MAX_ADDR_LENGTH), { error: 'must be an array' }).max(MAX_NEXT_ADDRS, { error: `must hold at most ${MAX_NEXT_ADDRS} addresses` }).optional(),
  },
  'an object {peerId, sessionId, stepId, addrs?}',
);
const nextHops = z.array(nextHop, { error: 'must be an array' }).min(1, { error: 'must name at least one hop' }).max(MAX_FORWARD_HOPS, { error: `must name at most ${MAX_FORWARD_HOPS} hops` });

const message = <T extends string, Shape extends z.ZodRawShape>(type: T, shape: Shape) => strictObject({ type: z.literal(type), ...shape });

const SCHEMAS = {
  open: message('open', {
    sessionId: id,
    maxLength: positiveLength,
    spanStart: blockIndex,
    spanEnd: blockIndex,
    /** Codec the client will use for step tensors and wants for replies. */
    codec,
    /** The one peer allowed to `push` steps into this session (the previous hop of a forwarding chain). */
    upstream: peerId.optional(),
  }),
  opened: message('opened', {
    sessionId: id,
    /** Position of the next token (0 for a fresh session). */
    position,
    cacheTokensLeft: nonNegative,
    /** The server accepts `next` on steps and `push`es from the named upstream. */
    forwarding: z.literal(true).optional(),
  }),
  step: message('step', {
    sessionId: id,
    stepId: nonNegative,
    /** Position of the first of `tokens` rows. */
    position,
    tokens: positiveLength,
    /** Later hops: the server pushes its output to next[0] (with the rest), see `push`. */
    next: nextHops.optional(),
    /** shape must be [tokens, hidden]. */
    tensor: tensorMeta,
  }),
  stepResult: message('stepResult', {
    sessionId: id,
    stepId: nonNegative,
    position,
    /** For a step with `next`: whether next[0] accepted the push (false: the client goes on hop by hop). */
    forwarded: z.boolean({ error: 'must be a boolean' }).optional(),
    /** Time this server spent running the step (queue + engine), and from reading it to replying (ms). */
    computeMs: reportedMs.optional(),
    serverMs: reportedMs.optional(),
    tensor: tensorMeta,
    /** The server's Ed25519 signature of the step (wire/attestation.ts), base64url; clients require it. */
    attestation: token(ATTESTATION_PATTERN, 'an Ed25519 signature in base64url (86 characters)').optional(),
  }),
  push: message('push', {
    /** The peer id of the client that owns the session (the session must have been opened by it). */
    client: peerId,
    sessionId: id,
    stepId: nonNegative,
    position,
    tokens: positiveLength,
    next: nextHops.optional(),
    tensor: tensorMeta,
  }),
  pushed: message('pushed', { sessionId: id, stepId: nonNegative }),
  forward: message('forward', { requestId: id, spanStart: blockIndex, spanEnd: blockIndex, tensor: tensorMeta }),
  forwardResult: message('forwardResult', { requestId: id, tensor: tensorMeta }),
  close: message('close', { sessionId: id }),
  closed: message('closed', { sessionId: id }),
  error: message('error', {
    ...ERROR_FIELDS,
    sessionId: id.optional(),
    stepId: nonNegative.optional(),
    requestId: id.optional(),
  }),
  ping: message('ping', { nonce: nonNegative }),
  pong: message('pong', { nonce: nonNegative }),
};

type Out<S extends z.ZodType> = Readonly<z.output<S>>;

export type TensorMeta = Out<typeof tensorMeta>;
export type OpenMessage = Out<typeof SCHEMAS.open>;
export type OpenedMessage = Out<typeof SCHEMAS.opened>;
export type StepMessage = Out<typeof SCHEMAS.step>;
export type StepResultMessage = Out<typeof SCHEMAS.stepResult>;
export type PushMessage = Out<typeof SCHEMAS.push>;
export type PushedMessage = Out<typeof SCHEMAS.pushed>;
export type NextHop = Out<typeof nextHop>;
export type ForwardMessage = Out<typeof SCHEMAS.forward>;
export type ForwardResultMessage = Out<typeof SCHEMAS.forwardResult>;
export type CloseMessage = Out<typeof SCHEMAS.close>;
export type ClosedMessage = Out<typeof SCHEMAS.closed>;
export type ErrorMessage = Out<typeof SCHEMAS.error>;
export type PingMessage = Out<typeof SCHEMAS.ping>;
export type PongMessage = Out<typeof SCHEMAS.pong>;

export type Message =
  | OpenMessage
  | OpenedMessage
  | StepMessage
  | StepResultMessage
  | PushMessage
  | PushedMessage
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

export const MESSAGE_TYPES: readonly MessageType[] = Object.freeze(Object.keys(SCHEMAS) as MessageType[]);

const TENSOR_TYPES: ReadonlySet<string> = new Set(['step', 'stepResult', 'push', 'forward', 'forwardResult']);

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
// Validation

function fail(message: string): never {
  throw new MalformedMessageError(message);
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** Checks that span several fields, on a message that passed its schema. */
function assertCrossFields(message: Message, maxTensorElements: number): void {
  if ((message.type === 'open' || message.type === 'forward') && message.spanStart >= message.spanEnd) {
    fail(`spanStart (${message.spanStart}) must be less than spanEnd (${message.spanEnd})`);
  }
  if (message.type === 'step' || message.type === 'push') {
    if (message.tensor.shape[0] !== message.tokens) {
      fail(`tensor.shape[0] (${message.tensor.shape[0]}) must equal tokens (${message.tokens})`);
    }
    if (message.position + message.tokens > MAX_SESSION_LENGTH) {
      fail(`position + tokens (${message.position + message.tokens}) exceeds ${MAX_SESSION_LENGTH}`);
    }
  }
  if ('tensor' in message) {
    const [tokens, hidden] = message.tensor.shape;
    if (tokens * hidden > maxTensorElements) fail(`${message.type}.tensor.shape [${tokens}, ${hidden}] has more than ${maxTensorElements} elements`);
  }
}

/**
 * Validates a parsed header (or a message about to be sent) and returns a fresh, canonical copy holding exactly
 * the schema's fields. Throws MalformedMessageError naming the first offending field.
 */
export function validateMessage(value: unknown, options: { maxTensorElements?: number } = {}): Message {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`header must be a JSON object, got ${describeValue(value)}`);
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') fail(`header.type must be a string, got ${describeValue(type)}`);
  if (!Object.hasOwn(SCHEMAS, type)) fail(`unknown message type ${JSON.stringify(truncate(type))}`);
  const result = checkSchema<Message>(SCHEMAS[type as MessageType], value, type);
  if (!result.ok) fail(result.reason);
  assertCrossFields(result.value, options.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS);
  return result.value;
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
  let full: object = header;
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
    full = { ...header, tensor: meta };
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

/** A frame whose header is decoded and validated, and whose tensor payload is not decoded yet. */
export interface PendingMessage {
  readonly header: Message;
  /** The raw tensor payload (a view into the frame); empty for types without a tensor. */
  readonly payload: Uint8Array;
  /** Size of the whole frame, prefix included. */
  readonly frameBytes: number;
}

/**
 * Decodes and validates one frame's header only, leaving the tensor payload undecoded, so a receiver can refuse a
 * request from its header (unknown session, wrong width, over a quota) before paying for the tensor.
 * Throws like decodeMessage.
 */
export function decodeMessageHeader(frame: Uint8Array, options: MessageOptions = {}): PendingMessage {
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
  const header = validateMessage(parsed, { maxTensorElements: options.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS });
  if (!TENSOR_TYPES.has(header.type) && payload.length !== 0) fail(`${header.type} carries no tensor, but has a ${payload.length}-byte payload`);
  return { header, payload, frameBytes: frame.length };
}

/** Decodes the tensor of a message whose header decodeMessageHeader accepted. */
export function decodeMessagePayload(pending: PendingMessage, options: MessageOptions = {}): DecodedMessage {
  const { header, payload } = pending;
  if (!TENSOR_TYPES.has(header.type)) return { header };
  const meta = (header as TensorMessage).tensor;
  let tensor: Float32Array;
  try {
    tensor = decodeTensor(payload, meta.shape, meta.dtype, { maxElements: options.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS });
  } catch (cause) {
    throw new MalformedMessageError(`${header.type} tensor: ${(cause as Error).message}`, { cause });
  }
  return { header, tensor };
}

/**
 * Decodes and validates one frame (as produced by encodeMessage / yielded by FrameDecoder). Throws
 * MalformedMessageError (code 'MALFORMED') for anything wrong with it, with the codec's error as `cause` where
 * the tensor payload is at fault, or FrameTooLargeError when the frame exceeds `maxFrameBytes`.
 */
export function decodeMessage(frame: Uint8Array, options: MessageOptions = {}): DecodedMessage {
  return decodeMessagePayload(decodeMessageHeader(frame, options), options);
}

/**
 * Builds the `error` reply for a failure: its code and message (via toPeerError), and
 * the ids of the request it answers (invalid ids are left out). The result always passes validation.
 */
export function errorMessage(
  error: unknown,
  ids: { sessionId?: string; stepId?: number; requestId?: string } = {},
): ErrorMessage {
  // toPeerError's codes match ERROR_CODE_PATTERN and its messages are shorter than MAX_ERROR_MESSAGE_LENGTH
  const { code, message } = toPeerError(error);
  const out: { -readonly [K in keyof ErrorMessage]: ErrorMessage[K] } = { type: 'error', code, message };
  // Ids echo what the peer sent; drop any that would make the reply itself invalid.
  if (typeof ids.sessionId === 'string' && ID_PATTERN.test(ids.sessionId)) out.sessionId = ids.sessionId;
  if (Number.isSafeInteger(ids.stepId) && ids.stepId! >= 0) out.stepId = ids.stepId;
  if (typeof ids.requestId === 'string' && ID_PATTERN.test(ids.requestId)) out.requestId = ids.requestId;
  return out;
}
