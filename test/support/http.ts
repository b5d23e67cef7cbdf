/**
 * What the gateway behaviour tests share: the text a local model generates for the same prompt (the reference a
 * swarm generation must equal), JSON requests, and reading a whole SSE response.
 */
import { generateFrom, type PromptOptions } from '../../src/inference/generate.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { renderChat } from '../../src/model/tokenizer/index.js';
import type { ChatMessage } from '../../src/model/types.js';
import { STORIES_GGUF } from './models.js';

export interface LocalResult {
  readonly text: string;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  readonly finishReason: string;
}

/** stories260K in this process, for reference generations. */
export class Reference {
  private constructor(readonly model: LocalModel) {}

  static async open(): Promise<Reference> {
    return new Reference(await LocalModel.open(STORIES_GGUF));
  }

  /** The ids the gateway's chat route feeds the model: the rendered template, without an extra BOS. */
  chatIds(messages: ChatMessage[]): number[] {
    const tokenizer = this.model.tokenizer;
    return tokenizer.encode(renderChat(tokenizer, messages, { addGenerationPrompt: true }), { addBos: false });
  }

  async generate(prompt: string | readonly number[], options: Omit<PromptOptions, 'temperature'> & { temperature?: number }): Promise<LocalResult> {
    const stream = generateFrom(this.model, prompt, { temperature: 0, ...options });
    let text = '';
    for await (const event of stream) text += event.text;
    return { text, promptTokens: stream.stats.promptTokens, generatedTokens: stream.stats.generatedTokens, finishReason: stream.stats.finishReason };
  }

  close(): Promise<void> {
    return this.model.close();
  }
}

export function postJson(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...init });
}

/** The `data:` payloads of a whole SSE response, in order (every event must be a single `data:` line). */
export async function sseData(response: Response): Promise<string[]> {
  const text = await response.text();
  const events = text.split(/\r?\n\r?\n/).filter((block) => block.trim() !== '');
  return events.map((block) => {
    const lines = block.split(/\r?\n/);
    const data = lines.filter((line) => line.startsWith('data:'));
    if (data.length !== 1) throw new Error(`an SSE event without exactly one data line: ${JSON.stringify(block)}`);
    return data[0]!.slice(5).trimStart();
  });
}

/** The OpenAI error shape, checked field by field; returns the error object. */
export function expectErrorShape(body: unknown): { message: string; type: string; param: string | null; code: string | null } {
  if (typeof body !== 'object' || body === null) throw new Error(`not an error body: ${JSON.stringify(body)}`);
  const error = (body as { error?: unknown }).error as Record<string, unknown> | undefined;
  if (!error || typeof error !== 'object') throw new Error(`no "error" object: ${JSON.stringify(body)}`);
  const keys = Object.keys(error).sort().join(',');
  if (keys !== 'code,message,param,type') throw new Error(`error fields are ${keys}: ${JSON.stringify(body)}`);
  if (typeof error.message !== 'string' || error.message === '') throw new Error(`error.message: ${JSON.stringify(body)}`);
  if (typeof error.type !== 'string') throw new Error(`error.type: ${JSON.stringify(body)}`);
  if (error.param !== null && typeof error.param !== 'string') throw new Error(`error.param: ${JSON.stringify(body)}`);
  if (error.code !== null && typeof error.code !== 'string') throw new Error(`error.code: ${JSON.stringify(body)}`);
  return error as { message: string; type: string; param: string | null; code: string | null };
}
