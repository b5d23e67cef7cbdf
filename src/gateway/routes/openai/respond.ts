/**
 * The OpenAI response shapes, shared by chat and text completions: one JSON body, or an SSE stream whose chunks all
 * carry the same id (the first delta carries the role, the last choice chunk the finish reason, then an optional
 * usage chunk with empty choices, then `[DONE]`). A failure after the stream began is sent as an error event before
 * `[DONE]`; a failure before it is an HTTP error with a status.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { PromptOptions } from '../../../inference/generate.js';
import { errorBody, InvalidRequestError } from '../../errors.js';
import type { GatewayContext, GatewayEnv } from '../../context.js';
import type { ModelHost } from '../../model-host.js';
import type { RequestApi } from '../../types.js';
import { SseQueue } from '../sse-queue.js';
import type { ChatCompletionRequest, CompletionRequest } from './schema.js';

type OpenAiRequest = ChatCompletionRequest | CompletionRequest;

/**
 * Generation options from an OpenAI body: its sampling fields, and max tokens bounded by the context. Without
 * max_tokens a generation may fill the context (chat) or stops at `defaultMaxTokens` (OpenAI's legacy completions: 16).
 */
export function promptOptions(body: OpenAiRequest, host: ModelHost, promptTokens: number, param: string, defaultMaxTokens = Infinity): Omit<PromptOptions, 'signal'> {
  const context = host.config.maxPositionEmbeddings;
  const asked = ('max_completion_tokens' in body ? body.max_completion_tokens : undefined) ?? body.max_tokens ?? undefined;
  const room = context - promptTokens;
  if (room < 1 || (asked !== undefined && asked > room)) {
    throw new InvalidRequestError(
        `this model's maximum context length is ${context} tokens; the prompt has ${promptTokens} tokens${asked !== undefined ? ` and ${asked} more were asked for` : ''}: shorten the prompt${asked !== undefined ? ' or lower max_tokens' : ''}`,
      asked !== undefined && room >= 1 ? ('max_completion_tokens' in body && body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens') : param,
      { openaiCode: 'context_length_exceeded' },
    );
  }
  const stop = body.stop == null ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    maxTokens: asked ?? Math.min(defaultMaxTokens, room),
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    ...(body.top_k != null ? { topK: body.top_k } : {}),
    ...(body.min_p != null ? { minP: body.min_p } : {}),
    ...(body.repetition_penalty != null ? { repetitionPenalty: body.repetition_penalty } : {}),
    ...(body.frequency_penalty != null ? { frequencyPenalty: body.frequency_penalty } : {}),
    ...(body.presence_penalty != null ? { presencePenalty: body.presence_penalty } : {}),
    ...(body.seed != null ? { seed: body.seed } : {}),
    ...(stop ? { stop } : {}),
  };
}

interface Shape {
  readonly api: RequestApi;
  readonly idPrefix: string;
  readonly object: string;
  readonly chunkObject: string;
  /** A choice carrying `text` (chat: a delta or message; completions: text). */
  choice(text: string, finishReason: string | null, first: boolean, stream: boolean): Record<string, unknown>;
}

export const CHAT_SHAPE: Shape = {
  api: 'chat.completions',
  idPrefix: 'chatcmpl-',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (text, finishReason, first, stream) =>
    stream
      ? { index: 0, delta: first ? { role: 'assistant', content: text } : finishReason === null ? { content: text } : {}, logprobs: null, finish_reason: finishReason }
      : { index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finishReason },
};

export const TEXT_SHAPE: Shape = {
  api: 'completions',
  idPrefix: 'cmpl-',
  object: 'text_completion',
  chunkObject: 'text_completion',
  choice: (text, finishReason) => ({ index: 0, text, logprobs: null, finish_reason: finishReason }),
};

/** Runs the generation and answers in `shape`, streaming or not. */
export async function respond(c: Context<GatewayEnv>, ctx: GatewayContext, shape: Shape, body: OpenAiRequest, host: ModelHost, prompt: number[], options: Omit<PromptOptions, 'signal'>): Promise<Response> {
  const signal = c.req.raw.signal;
  const running = await ctx.generations.start({ api: shape.api, host, prompt, options, auth: c.get('auth'), wallet: null, signal });
  const id = `${shape.idPrefix}${running.id.replace(/^req_/, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const model = host.name;
  const usage = () => {
    const completion = running.outcome().stats.generatedTokens;
    return { prompt_tokens: running.promptTokens, completion_tokens: completion, total_tokens: running.promptTokens + completion };
  };
  const finishReason = () => (running.outcome().finishReason === 'stop' ? 'stop' : 'length');
  c.header('x-request-id', running.id);

  if (!body.stream) {
    let text = '';
    for await (const event of running.events) text += event.text;
    return c.json({ id, object: shape.object, created, model, system_fingerprint: null, choices: [shape.choice(text, finishReason(), true, false)], usage: usage() });
  }

  const includeUsage = body.stream_options?.include_usage === true;
  return streamSSE(c, async (stream) => {
    const events = new SseQueue(stream);
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => events.send(JSON.stringify({ id, object: shape.chunkObject, created, model, system_fingerprint: null, choices, ...extra }));
    if (shape.api === 'chat.completions') await chunk([shape.choice('', null, true, true)]);
    try {
      for await (const event of running.events) {
        if (event.text) await chunk([shape.choice(event.text, null, false, true)]);
      }
      await chunk([shape.choice('', finishReason(), false, true)]);
      if (includeUsage) await chunk([], { usage: usage() });
    } catch (error) {
      ctx.metrics.httpErrors.inc({ route: c.req.routePath, status: String(errorBody(error).status) });
      await events.send(JSON.stringify(errorBody(error).body));
    }
    await events.send('[DONE]');
    await events.flush();
  });
}
