/**
 * OpenAI request bodies: every field we honour, bounded; fields that would change the result but are not supported
 * are refused by name (see `refuseUnsupported`), and harmless unknown fields are accepted and ignored, as OpenAI's
 * own API does for fields a model does not use.
 */
import { z } from 'zod';
import { intIn, numberIn, text } from '../../../wire/schema.js';
import { MAX_ID_CHARS, MAX_MESSAGES, MAX_PROMPT_CHARS, MAX_STOP_CHARS, MAX_STOP_SEQUENCES } from '../../defaults.js';
import { UnsupportedParameterError } from '../../errors.js';

const promptText = z.string({ error: 'must be a string' }).max(MAX_PROMPT_CHARS, { error: `must be at most ${MAX_PROMPT_CHARS} characters` });
// stop strings are often control characters ("\n"), which `text` refuses
const stopText = z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(MAX_STOP_CHARS, { error: `must be at most ${MAX_STOP_CHARS} characters` });
const stop = z.union([stopText, z.array(stopText, { error: 'must be a string or an array of strings' }).max(MAX_STOP_SEQUENCES, { error: `must hold at most ${MAX_STOP_SEQUENCES} sequences` })], { error: 'must be a string or an array of strings' });

const textPart = z.object({ type: z.literal('text', { error: 'must be "text" (only text content is supported)' }), text: promptText }, { error: 'must be a content part' });
const content = z.union([promptText, z.array(textPart, { error: 'must be a string or an array of text parts' }).max(256)], { error: 'must be a string or an array of text parts' });

const message = z.object(
  {
    role: z.enum(['system', 'developer', 'user', 'assistant'], { error: 'must be one of system, developer, user, assistant (tool messages are not supported)' }),
    content: content.nullable().optional(),
    name: text(1, 64).optional(),
  },
  { error: 'must be a message object' },
);

/** Sampling fields shared by chat and completions. */
const sampling = {
  model: text(1, 256),
  max_tokens: intIn(1, 1_000_000).nullable().optional(),
  temperature: numberIn(0, 2).nullable().optional(),
  top_p: numberIn(0, 1).nullable().optional(),
  top_k: intIn(0, 1_000_000).nullable().optional(),
  min_p: numberIn(0, 1).nullable().optional(),
  repetition_penalty: numberIn(0.01, 10).nullable().optional(),
  frequency_penalty: numberIn(-2, 2).nullable().optional(),
  presence_penalty: numberIn(-2, 2).nullable().optional(),
  seed: intIn(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER).nullable().optional(),
  stop: stop.nullable().optional(),
  stream: z.boolean({ error: 'must be a boolean' }).nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean({ error: 'must be a boolean' }).optional() }, { error: 'must be an object' }).nullable().optional(),
  user: text(0, MAX_ID_CHARS).optional(),
  n: intIn(1, 128).nullable().optional(),
  logprobs: z.union([z.boolean(), intIn(0, 20)], { error: 'must be a boolean or an integer' }).nullable().optional(),
};

export const chatCompletionSchema = z.object(
  {
    ...sampling,
    messages: z.array(message, { error: 'must be an array of messages' }).min(1, { error: 'must hold at least one message' }).max(MAX_MESSAGES, { error: `must hold at most ${MAX_MESSAGES} messages` }),
    max_completion_tokens: intIn(1, 1_000_000).nullable().optional(),
  },
  { error: 'must be an object' },
);

export const completionSchema = z.object(
  {
    ...sampling,
    prompt: z.union([promptText, z.array(promptText).length(1, { error: 'must hold exactly one prompt (batches are not supported)' })], { error: 'must be a string' }),
    echo: z.boolean({ error: 'must be a boolean' }).nullable().optional(),
    suffix: z.string({ error: 'must be a string' }).max(MAX_STOP_CHARS).nullable().optional(),
    best_of: intIn(1, 128).nullable().optional(),
  },
  { error: 'must be an object' },
);

export type ChatCompletionRequest = z.output<typeof chatCompletionSchema>;
export type CompletionRequest = z.output<typeof completionSchema>;

/** Present and not a no-op: a list, object or true value (null, false, [] and {} change nothing). */
function isSet(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/** Refuses, by name, fields that would change the result but that this gateway does not implement. */
export function refuseUnsupported(body: Record<string, unknown>): void {
  if (typeof body.n === 'number' && body.n > 1) throw new UnsupportedParameterError('n', 'only one choice per request (n = 1)');
  if (typeof body.best_of === 'number' && body.best_of > 1) throw new UnsupportedParameterError('best_of', 'only one candidate per request');
  for (const field of ['tools', 'tool_choice', 'functions', 'function_call', 'logit_bias', 'audio', 'prediction', 'top_logprobs', 'suffix'] as const) {
    if (isSet(body[field])) throw new UnsupportedParameterError(field, 'this gateway generates plain text only');
  }
  if (isSet(body.logprobs) && body.logprobs !== 0) throw new UnsupportedParameterError('logprobs', 'log probabilities are not returned');
  if (body.echo === true) throw new UnsupportedParameterError('echo', 'the prompt is not echoed');
  const format = body.response_format as { type?: unknown } | null | undefined;
  if (isSet(format) && format?.type !== 'text') throw new UnsupportedParameterError('response_format', 'only {"type":"text"} is supported');
  const modalities = body.modalities;
  if (Array.isArray(modalities) && modalities.some((m) => m !== 'text')) throw new UnsupportedParameterError('modalities', 'only text is generated');
}
