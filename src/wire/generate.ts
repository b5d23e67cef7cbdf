/**
 * Whole-model generation (/corolla/generate/1.0.0): the messages, their limits and their schemas (wire/schema.ts). Served
 * by server/generate-protocol.ts, spoken by client/generate-client.ts.
 *
 * One stream = one generation. Every message is one length-prefixed (varint, as lpStream writes) UTF-8 JSON object.
 *   client → server, once:  {prompt: number[], maxTokens: number, sampling?: GenerateSampling, stopTokens?: number[]}
 *   server → client:        {token: number}   one per generated token, in order
 *                           then exactly one of
 *                           {done: true, finishReason: "stop" | "length"}
 *                           {error: {code: string, message: string}}
 * `prompt` holds 1..maxLength token ids; `maxTokens` ≥ 0. A sampled stop token (default: the model's EOS ids; `[]`
 * disables) ends the generation with "stop" and is not sent. The client may reset (abort) the stream at any time to
 * cancel; the server then stops and frees the session. The client should not half-close before the final message.
 */
import { GenerateRequestTooLargeError, InvalidGenerateRequestError } from './errors.js';
import { ERROR_FIELDS } from './messages.js';
import { GENERATE_PROTOCOL, PROTOCOLS } from './protocols.js';
import { checkSchema, describeValue, oneOf, strictObject, z, type SchemaResult } from './schema.js';

export { GENERATE_PROTOCOL };
/** Largest request (a prompt of ~100k tokens). */
export const MAX_GENERATE_REQUEST_BYTES = PROTOCOLS.generate.maxMessageBytes;
/** Largest server message. */
export const MAX_GENERATE_MESSAGE_BYTES = 64 * 1024;
/** Most stop tokens a request may list. */
export const MAX_STOP_TOKENS = 1024;

// ---------------------------------------------------------------------------------------------------------------
// Schemas

// Sampling values only need to be numbers here: the server's sampler checks their ranges.
const samplingValue = z.number({ error: 'must be a number' }).optional();
const SAMPLING_SHAPE = {
  temperature: samplingValue,
  topK: samplingValue,
  topP: samplingValue,
  minP: samplingValue,
  repetitionPenalty: samplingValue,
  penaltyLastN: samplingValue,
  frequencyPenalty: samplingValue,
  presencePenalty: samplingValue,
  seed: samplingValue,
};
const samplingSchema = strictObject(SAMPLING_SHAPE);

/** Sampling options a request may carry. */
export type GenerateSampling = Readonly<z.output<typeof samplingSchema>>;

export const GENERATE_SAMPLING_KEYS = Object.freeze(Object.keys(SAMPLING_SHAPE)) as readonly (keyof GenerateSampling)[];

export interface GenerateRequest {
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  readonly sampling?: GenerateSampling;
  /** Token ids that end the generation (not emitted). Default: the model's EOS ids. */
  readonly stopTokens?: readonly number[];
}

/** The request schema for a vocabulary of `vocabSize` tokens. */
function requestSchema(vocabSize: number) {
  const what = `a token id in 0..${vocabSize - 1}`;
  const tokenId = z
    .number({ error: `must be ${what}` })
    .refine((id) => Number.isInteger(id) && id >= 0 && id < vocabSize, { error: `must be ${what}` });
  const tokenIds = z.array(tokenId, { error: 'must be an array of token ids' });
  return strictObject(
    {
      prompt: tokenIds.min(1, { error: 'must hold at least one token id' }),
      maxTokens: z
        .number({ error: 'must be an integer ≥ 0' })
        .refine((n) => Number.isSafeInteger(n) && n >= 0, { error: 'must be an integer ≥ 0' }),
      sampling: samplingSchema.optional(),
      stopTokens: tokenIds.max(MAX_STOP_TOKENS, { error: `must hold at most ${MAX_STOP_TOKENS} token ids` }).optional(),
    },
    'a JSON object',
  );
}

// A server has one vocabulary: build its schema once.
let lastRequestSchema: { vocabSize: number; schema: ReturnType<typeof requestSchema> } | undefined;

/**
 * Validates a parsed request against a server's vocabulary and length limit. Throws InvalidGenerateRequestError
 * (naming the first offending field) or GenerateRequestTooLargeError. Sampling values are left to the sampler.
 */
export function validateGenerateRequest(value: unknown, limits: { vocabSize: number; maxLength: number }): GenerateRequest {
  if (lastRequestSchema?.vocabSize !== limits.vocabSize) lastRequestSchema = { vocabSize: limits.vocabSize, schema: requestSchema(limits.vocabSize) };
  const result = checkSchema<GenerateRequest>(lastRequestSchema.schema, value);
  if (!result.ok) throw new InvalidGenerateRequestError(result.reason);
  const { prompt, maxTokens } = result.value;
  if (prompt.length + maxTokens > limits.maxLength) {
    throw new GenerateRequestTooLargeError(`prompt (${prompt.length}) + maxTokens (${maxTokens}) exceeds this server's limit of ${limits.maxLength} tokens`);
  }
  return result.value;
}

const SERVER_MESSAGE_SCHEMAS = {
  token: strictObject({ token: z.number({ error: 'must be a token id' }).refine((id) => Number.isSafeInteger(id) && id >= 0, { error: 'must be a token id' }) }),
  done: strictObject({ done: z.literal(true, { error: 'must be true' }), finishReason: oneOf(['stop', 'length']) }),
  error: strictObject({ error: strictObject(ERROR_FIELDS, 'an object {code, message}') }),
};

type Out<S extends z.ZodType> = Readonly<z.output<S>>;

export type GenerateServerMessage =
  | Out<typeof SERVER_MESSAGE_SCHEMAS.token>
  | Out<typeof SERVER_MESSAGE_SCHEMAS.done>
  | Out<typeof SERVER_MESSAGE_SCHEMAS.error>;

export type GenerateFinishReason = Extract<GenerateServerMessage, { done: true }>['finishReason'];

/** Validates a parsed server message; its one key (`token`, `done` or `error`) picks the schema. */
export function checkGenerateServerMessage(value: unknown): SchemaResult<GenerateServerMessage> {
  const kind =
    typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (Object.keys(SERVER_MESSAGE_SCHEMAS) as (keyof typeof SERVER_MESSAGE_SCHEMAS)[]).find((key) => Object.hasOwn(value, key))
      : undefined;
  if (kind === undefined) return { ok: false, reason: `must be {token}, {done, finishReason} or {error}, got ${describeValue(value)}` };
  return checkSchema<GenerateServerMessage>(SERVER_MESSAGE_SCHEMAS[kind], value);
}
