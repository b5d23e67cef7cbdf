/**
 * Whole-model generation (/corolla/generate/1.0.0): the messages, their limits, and the request validator. Served
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
import { CorollaError } from '../errors.js';
import { GENERATE_PROTOCOL, PROTOCOLS } from './protocols.js';

export { GENERATE_PROTOCOL };
/** Largest request (a prompt of ~100k tokens). */
export const MAX_GENERATE_REQUEST_BYTES = PROTOCOLS.generate.maxMessageBytes;
/** Largest server message. */
export const MAX_GENERATE_MESSAGE_BYTES = 64 * 1024;
/** Most stop tokens a request may list. */
export const MAX_STOP_TOKENS = 1024;

/** Sampling options a request may carry (their values are checked by the server's sampler). */
export interface GenerateSampling {
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  readonly minP?: number;
  readonly repetitionPenalty?: number;
  readonly penaltyLastN?: number;
  readonly frequencyPenalty?: number;
  readonly presencePenalty?: number;
  readonly seed?: number;
}

export const GENERATE_SAMPLING_KEYS = [
  'temperature',
  'topK',
  'topP',
  'minP',
  'repetitionPenalty',
  'penaltyLastN',
  'frequencyPenalty',
  'presencePenalty',
  'seed',
] as const satisfies readonly (keyof GenerateSampling)[];

export interface GenerateRequest {
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  readonly sampling?: GenerateSampling;
  /** Token ids that end the generation (not emitted). Default: the model's EOS ids. */
  readonly stopTokens?: readonly number[];
}

export type GenerateFinishReason = 'stop' | 'length';

export type GenerateServerMessage =
  | { token: number }
  | { done: true; finishReason: GenerateFinishReason }
  | { error: { code: string; message: string } };

/** A generate request that does not follow the protocol. */
export class InvalidGenerateRequestError extends CorollaError {
  override readonly name = 'InvalidGenerateRequestError';
  constructor(message: string) {
    super('INVALID_REQUEST', `invalid generate request: ${message}`);
  }
}

/** A generate request longer than the server accepts. */
export class GenerateRequestTooLargeError extends CorollaError {
  override readonly name = 'GenerateRequestTooLargeError';
  constructor(message: string) {
    super('REQUEST_TOO_LARGE', message);
  }
}

const SAMPLING_KEYS: ReadonlySet<string> = new Set(GENERATE_SAMPLING_KEYS);
const REQUEST_KEYS: ReadonlySet<string> = new Set(['prompt', 'maxTokens', 'sampling', 'stopTokens']);

export const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function tokenList(value: unknown, field: string, vocabSize: number, min: number, max: number): number[] {
  if (!Array.isArray(value)) throw new InvalidGenerateRequestError(`${field} must be an array of token ids`);
  if (value.length < min || value.length > max) throw new InvalidGenerateRequestError(`${field} must hold ${min}..${max} token ids, got ${value.length}`);
  value.forEach((id, i) => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new InvalidGenerateRequestError(`${field}[${i}] must be a token id in 0..${vocabSize - 1}, got ${JSON.stringify(id)?.slice(0, 40)}`);
    }
  });
  return value as number[];
}

/**
 * Validates the shape of a parsed request against a server's vocabulary and length limit. Throws
 * InvalidGenerateRequestError / GenerateRequestTooLargeError. Sampling values are left to the sampler to check.
 */
export function validateGenerateRequest(value: unknown, limits: { vocabSize: number; maxLength: number }): GenerateRequest {
  if (!isObject(value)) throw new InvalidGenerateRequestError('the request must be a JSON object');
  for (const key of Object.keys(value)) if (!REQUEST_KEYS.has(key)) throw new InvalidGenerateRequestError(`unknown field ${JSON.stringify(key.slice(0, 40))}`);
  const prompt = tokenList(value.prompt, 'prompt', limits.vocabSize, 1, Number.MAX_SAFE_INTEGER);
  const maxTokens = value.maxTokens;
  if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new InvalidGenerateRequestError(`maxTokens must be an integer ≥ 0, got ${JSON.stringify(maxTokens)?.slice(0, 40)}`);
  }
  if (prompt.length + maxTokens > limits.maxLength) {
    throw new GenerateRequestTooLargeError(`prompt (${prompt.length}) + maxTokens (${maxTokens}) exceeds this server's limit of ${limits.maxLength} tokens`);
  }
  let sampling: GenerateSampling | undefined;
  if (value.sampling !== undefined) {
    if (!isObject(value.sampling)) throw new InvalidGenerateRequestError('sampling must be an object');
    for (const key of Object.keys(value.sampling)) {
      if (!SAMPLING_KEYS.has(key)) throw new InvalidGenerateRequestError(`unknown sampling option ${JSON.stringify(key.slice(0, 40))}`);
    }
    sampling = value.sampling as GenerateSampling;
  }
  const stopTokens = value.stopTokens === undefined ? undefined : tokenList(value.stopTokens, 'stopTokens', limits.vocabSize, 0, MAX_STOP_TOKENS);
  return { prompt, maxTokens, ...(sampling ? { sampling } : {}), ...(stopTokens ? { stopTokens } : {}) };
}
