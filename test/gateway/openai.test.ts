/**
 * The OpenAI-compatible API through the official `openai` client (v6), on an in-process gateway over a routed
 * two-server swarm of stories260K: chat and completions, streaming and not, usage, finish reasons, seeds, and the
 * errors the client surfaces. Greedy text must equal what the model generates locally.
 */
import OpenAI, { APIError, BadRequestError, NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { expectErrorShape, postJson, Reference } from '../support/http.js';

const PROMPT = 'Once upon a time, there was a little';
const MESSAGES = [{ role: 'system' as const, content: 'You tell short stories.' }, { role: 'user' as const, content: 'Tell me about a cat.' }];
const MAX_TOKENS = 24;

let testGateway: TestGateway;
let client: OpenAI;
let reference: Reference;

beforeAll(async () => {
  [testGateway, reference] = await Promise.all([startTestGateway(), Reference.open()]);
  client = new OpenAI({ baseURL: `${testGateway.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 30_000 });
});

afterAll(async () => {
  await testGateway?.close();
  await reference?.close();
});

/** The error a request fails with (the test fails when it succeeds). */
async function failure(request: () => Promise<unknown>): Promise<APIError> {
  try {
    await request();
  } catch (error) {
    if (error instanceof APIError) return error;
    throw error;
  }
  throw new Error('the request succeeded');
}

describe('completions', () => {
  it('non-streaming greedy text equals local generation, with usage and finish_reason length', async () => {
    const expected = await reference.generate(PROMPT, { maxTokens: MAX_TOKENS });
    expect(expected.generatedTokens).toBe(MAX_TOKENS); // the story does not end this soon
    const completion = await client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0 });
    expect(completion.object).toBe('text_completion');
    expect(completion.id).toMatch(/^cmpl-/);
    expect(completion.model).toBe(TEST_MODEL);
    expect(Math.abs(completion.created - Date.now() / 1000)).toBeLessThan(60);
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]!.text).toBe(expected.text);
    expect(completion.choices[0]!.finish_reason).toBe('length');
    expect(completion.usage).toEqual({ prompt_tokens: reference.model.tokenizer.encode(PROMPT).length, completion_tokens: MAX_TOKENS, total_tokens: expected.promptTokens + MAX_TOKENS });
    expect(completion.usage!.prompt_tokens).toBe(expected.promptTokens);
  });

  it('streaming: one id, the same text, the finish reason last, then usage when asked', async () => {
    const expected = await reference.generate(PROMPT, { maxTokens: MAX_TOKENS });
    const stream = await client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0]!.id).toMatch(/^cmpl-/);
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices.map((c) => c.choices[0]!.text).join('')).toBe(expected.text);
    expect(withChoices.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
    expect(withChoices.at(-1)!.choices[0]!.finish_reason).toBe('length');
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: expected.promptTokens, completion_tokens: MAX_TOKENS, total_tokens: expected.promptTokens + MAX_TOKENS });
    expect(chunks.filter((c) => c.usage).length).toBe(1);
  });

  it('stops on a stop string, without emitting it, with finish_reason stop', async () => {
    const full = await reference.generate(PROMPT, { maxTokens: MAX_TOKENS });
    // a word from the middle of the greedy text
    const words = full.text.split(/\s+/).filter((w) => /^[A-Za-z]{3,}$/.test(w));
    const stop = words[Math.floor(words.length / 2)]!;
    expect(stop).toBeDefined();
    const completion = await client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, stop: [stop] });
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.choices[0]!.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
    expect(completion.usage!.completion_tokens).toBeLessThan(MAX_TOKENS);
  });

  it('stops on a newline (the commonest stop string), streaming too', async () => {
    const expected = await reference.generate(PROMPT, { maxTokens: 80, stop: ['\n'] });
    expect(expected.finishReason).toBe('stop'); // the first paragraph ends within 80 tokens
    const completion = await client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: 80, temperature: 0, stop: '\n' });
    expect(completion.choices[0]!.text).toBe(expected.text);
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    const stream = await client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: 80, temperature: 0, stop: ['\n', '\t'], stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(expected.text);
    expect(finish).toBe('stop');
  });

  it('a seed makes sampling repeatable; different seeds differ', async () => {
    const sample = async (seed: number) => (await client.completions.create({ model: TEST_MODEL, prompt: 'Once', max_tokens: 32, temperature: 0.8, seed })).choices[0]!.text;
    const [a, b, c] = [await sample(1234), await sample(1234), await sample(98765)];
    expect(a.length).toBeGreaterThan(0);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });
  it('without max_tokens stops at 16 tokens, OpenAI\'s default for completions', async () => {
    const completion = await client.completions.create({ model: TEST_MODEL, prompt: 'Once upon a time', temperature: 0 });
    expect(completion.usage?.completion_tokens).toBe(16);
    expect(completion.choices[0]!.finish_reason).toBe('length');
  });
});

describe('chat completions', () => {
  it('non-streaming greedy reply equals local generation over the rendered template', async () => {
    const ids = reference.chatIds(MESSAGES);
    const expected = await reference.generate(ids, { maxTokens: MAX_TOKENS });
    const completion = await client.chat.completions.create({ model: TEST_MODEL, messages: MESSAGES, max_tokens: MAX_TOKENS, temperature: 0 });
    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toMatch(/^chatcmpl-/);
    expect(completion.choices[0]!.message.role).toBe('assistant');
    expect(completion.choices[0]!.message.content).toBe(expected.text);
    expect(completion.choices[0]!.finish_reason).toBe(expected.finishReason === 'stop' ? 'stop' : 'length');
    expect(completion.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: expected.generatedTokens, total_tokens: ids.length + expected.generatedTokens });
  });

  it('streaming: one id, role first, finish reason last, then the usage chunk, and the iterator ends on [DONE]', async () => {
    const ids = reference.chatIds(MESSAGES);
    const expected = await reference.generate(ids, { maxTokens: MAX_TOKENS });
    const stream = await client.chat.completions.create({ model: TEST_MODEL, messages: MESSAGES, max_tokens: MAX_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === TEST_MODEL)).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(new Set(chunks.map((c) => c.created)).size).toBe(1);
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(withChoices.slice(1).every((c) => c.choices[0]!.delta.role === undefined)).toBe(true);
    expect(withChoices.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(expected.text);
    expect(withChoices.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
    expect(withChoices.at(-1)!.choices[0]!.finish_reason).toBe(expected.finishReason === 'stop' ? 'stop' : 'length');
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: expected.generatedTokens, total_tokens: ids.length + expected.generatedTokens });
  });

  it('without include_usage, no chunk carries usage', async () => {
    const stream = await client.chat.completions.create({ model: TEST_MODEL, messages: MESSAGES, max_tokens: 4, temperature: 0, stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.every((c) => c.choices.length === 1 && !c.usage)).toBe(true);
  });

  it('honours max_completion_tokens (over max_tokens)', async () => {
    const completion = await client.chat.completions.create({ model: TEST_MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], max_completion_tokens: 3, max_tokens: 50, temperature: 0 });
    const ids = reference.chatIds([{ role: 'user', content: 'Once upon a time' }]);
    const expected = await reference.generate(ids, { maxTokens: 3 });
    expect(completion.choices[0]!.message.content).toBe(expected.text);
    expect(completion.usage!.completion_tokens).toBe(expected.generatedTokens);
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(3);
  });
});

describe('errors through the client', () => {
  const base = { model: TEST_MODEL, messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 2 };

  it.each([
    ['n', { n: 2 }],
    ['tools', { tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] }],
    ['logprobs', { logprobs: true }],
    ['response_format', { response_format: { type: 'json_object' } }],
  ] as const)('refuses %s with a 400 naming it', async (param, extra) => {
    const error = await failure(() => client.chat.completions.create({ ...base, ...extra } as never));
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
    expect(error.message).toContain(param);
  });

  it('an unknown model is a 404', async () => {
    const error = await failure(() => client.chat.completions.create({ ...base, model: 'no-such-model' }));
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.code).toBe('model_not_found');
    const completions = await failure(() => client.completions.create({ model: 'no-such-model', prompt: 'x' }));
    expect(completions).toBeInstanceOf(NotFoundError);
  });

  it('a prompt longer than the context is a 400 that says so', async () => {
    const context = testGateway.gateway.models.get(TEST_MODEL).config.maxPositionEmbeddings;
    const prompt = 'Once upon a time there was a cat. '.repeat(Math.ceil(context / 4));
    expect(reference.model.tokenizer.encode(prompt).length).toBeGreaterThan(context);
    const error = await failure(() => client.completions.create({ model: TEST_MODEL, prompt, max_tokens: 4 }));
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.message).toMatch(/context/);
    expect(error.message).toContain(String(context));
    const chat = await failure(() => client.chat.completions.create({ model: TEST_MODEL, messages: [{ role: 'user', content: prompt }] }));
    expect(chat.status).toBe(400);
    expect(chat.message).toMatch(/context/);
  });

  it('max_tokens past the room left is a 400 naming max_tokens', async () => {
    const context = testGateway.gateway.models.get(TEST_MODEL).config.maxPositionEmbeddings;
    const error = await failure(() => client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: context }));
    expect(error.status).toBe(400);
    expect(error.param).toBe('max_tokens');
  });
});

describe('models', () => {
  it('lists the served model and retrieves it by id', async () => {
    const list = [];
    for await (const model of client.models.list()) list.push(model);
    expect(list.map((m) => m.id)).toEqual([TEST_MODEL]);
    expect(list[0]!.object).toBe('model');
    const one = await client.models.retrieve(TEST_MODEL);
    expect(one.id).toBe(TEST_MODEL);
    expect(await failure(() => client.models.retrieve('nope'))).toBeInstanceOf(NotFoundError);
  });
});

// Last: it kills a server, leaving blocks 3–4 unserved for the rest of this file.
describe('a failure mid-stream', () => {
  it('is sent as an error event, then [DONE]; the ledger records the failure; new requests get 503', async () => {
    const response = await postJson(`${testGateway.url}/v1/chat/completions`, { model: TEST_MODEL, messages: MESSAGES, max_tokens: 1500, temperature: 0, stream: true });
    expect(response.status).toBe(200);
    const requestId = response.headers.get('x-request-id')!;
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (text.split('\n\n').length < 6) text += (await reader.read()).value ?? '';
    await testGateway.swarm.kill(testGateway.swarm.servers[1]!.server.peerId);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const data = text.split('\n\n').filter((e) => e.trim() !== '').map((e) => e.replace(/^data: ?/, ''));
    expect(data.at(-1)).toBe('[DONE]');
    const error = expectErrorShape(JSON.parse(data.at(-2)!));
    expect(error.type).toBe('service_unavailable');
    const entry = await testGateway.ledger.get(requestId);
    expect(entry!.request.status).toBe('failed');
    expect(entry!.request.error).toBeTruthy();
    expect(entry!.request.completionTokens).toBeGreaterThan(0);
    expect(entry!.contributions.some((c) => c.blockStart === 3 && c.failed)).toBe(true);

    const refused = await failure(() => client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: 2 }));
    expect(refused.status).toBe(503);
  });
});
