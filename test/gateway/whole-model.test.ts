/**
 * The same APIs when the swarm has a whole-model server, so the gateway runs each generation there in one hop (the
 * server samples): greedy text equals local generation, usage and the ledger's contributions are right, and a client
 * that leaves frees the server's cache.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseFar } from '../../src/gateway/ledger/money.js';
import { DEFAULT_PRICE_PER_TOKEN_FAR } from '../../src/gateway/defaults.js';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { eventually } from '../support/wait.js';
import { postJson, Reference, sseData } from '../support/http.js';

const PROMPT = 'Once upon a time';

let testGateway: TestGateway;
let reference: Reference;
let client: OpenAI;

beforeAll(async () => {
  [testGateway, reference] = await Promise.all([startTestGateway({ spans: ['all'] }), Reference.open()]);
  client = new OpenAI({ baseURL: `${testGateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
});

afterAll(async () => {
  await testGateway?.close();
  await reference?.close();
});

const sessions = () => testGateway.swarm.servers[0]!.server.service.activeSessions;

it('runs on the whole-model server: greedy text, usage, finish reasons', async () => {
  const expected = await reference.generate(PROMPT, { maxTokens: 20 });
  const completion = await client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: 20, temperature: 0 });
  expect(completion.choices[0]!.text).toBe(expected.text);
  expect(completion.choices[0]!.finish_reason).toBe('length');
  expect(completion.usage).toEqual({ prompt_tokens: expected.promptTokens, completion_tokens: 20, total_tokens: expected.promptTokens + 20 });

  const messages = [{ role: 'user' as const, content: 'Tell me a story.' }];
  const chatExpected = await reference.generate(reference.chatIds(messages), { maxTokens: 12 });
  const stream = await client.chat.completions.create({ model: TEST_MODEL, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    usage = chunk.usage ?? usage;
  }
  expect(text).toBe(chatExpected.text);
  expect(usage).toEqual({ prompt_tokens: chatExpected.promptTokens, completion_tokens: chatExpected.generatedTokens, total_tokens: chatExpected.promptTokens + chatExpected.generatedTokens });

  const stop = expected.text.split(' ')[3]!;
  const stopped = await client.completions.create({ model: TEST_MODEL, prompt: PROMPT, max_tokens: 20, temperature: 0, stop });
  expect(stopped.choices[0]!.finish_reason).toBe('stop');
  expect(stopped.choices[0]!.text).toBe(expected.text.slice(0, expected.text.indexOf(stop)));
});

it('the ledger credits the whole-model server with every block', async () => {
  const n = 7;
  await sseData(await postJson(`${testGateway.url}/inference/generate`, { prompt: PROMPT, max_tokens: n, temperature: 0, request_id: 'whole-1' }));
  const entry = await testGateway.ledger.get('whole-1');
  expect(entry!.request).toMatchObject({ status: 'completed', completionTokens: n, costUnits: BigInt(n) * parseFar(DEFAULT_PRICE_PER_TOKEN_FAR) });
  expect(entry!.contributions).toHaveLength(1);
  expect(entry!.contributions[0]).toMatchObject({ peerId: testGateway.swarm.servers[0]!.server.peerId, blockStart: 0, blockEnd: 5, promptTokens: entry!.request.promptTokens, failed: false });
  expect(entry!.contributions[0]!.generatedTokens).toBeGreaterThanOrEqual(n - 1);
  expect(entry!.contributions[0]!.generatedTokens).toBeLessThanOrEqual(n);
});

it('a client that leaves mid-stream cancels the generation and frees the server', async () => {
  const controller = new AbortController();
  const response = await postJson(`${testGateway.url}/v1/completions`, { model: TEST_MODEL, prompt: PROMPT, max_tokens: 1500, temperature: 0, stream: true }, { signal: controller.signal });
  const requestId = response.headers.get('x-request-id')!;
  const reader = response.body!.getReader();
  let seen = '';
  while (seen.split('\n\n').length < 6) seen += new TextDecoder().decode((await reader.read()).value);
  expect(sessions()).toBeGreaterThan(0);
  controller.abort();
  const entry = await eventually(async () => {
    const e = await testGateway.ledger.get(requestId);
    return e && e.request.status !== 'running' ? e : undefined;
  });
  expect(entry.request.status).toBe('cancelled');
  expect(entry.request.completionTokens).toBeGreaterThanOrEqual(5);
  expect(entry.request.completionTokens).toBeLessThan(1500);
  await eventually(async () => sessions() === 0, 10_000, 50);
});
