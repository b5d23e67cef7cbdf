/**
 * Client disconnects: a client that goes away mid-generation (streaming through each API, or waiting for a
 * non-streaming answer) cancels it. The ledger records `cancelled` with the tokens served so far, and every block
 * server's session table is empty again (their caches freed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFar } from '../../src/gateway/ledger/money.js';
import { DEFAULT_PRICE_PER_TOKEN_FAR } from '../../src/gateway/defaults.js';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { eventually, sleep } from '../support/wait.js';
import { postJson } from '../support/http.js';

// greedy stories260K does not end a story within this many tokens, so only the client can end these requests
const LONG = 1500;

let testGateway: TestGateway;

beforeAll(async () => {
  testGateway = await startTestGateway();
});

afterAll(async () => {
  await testGateway?.close();
});

const serverSessions = () => testGateway.swarm.servers.map((s) => s.server.service.activeSessions);

/** Reads SSE data lines until `enough` says stop; returns them. */
async function readUntil(response: Response, enough: (data: string[]) => boolean): Promise<string[]> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const data: string[] = [];
  let buffer = '';
  while (!enough(data)) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the stream ended before the client meant to leave');
    buffer += value;
    const events = buffer.split('\n\n');
    buffer = events.pop()!;
    for (const event of events) for (const line of event.split('\n')) if (line.startsWith('data:')) data.push(line.slice(5).trim());
  }
  return data;
}

async function expectCancelled(requestId: string, tokensSeen: number) {
  const entry = await eventually(async () => {
    const e = await testGateway.ledger.get(requestId);
    return e && e.request.status !== 'running' ? e : undefined;
  });
  const { request, contributions } = entry;
  expect(request.status).toBe('cancelled');
  expect(request.error).toBeNull();
  expect(request.completionTokens).toBeGreaterThanOrEqual(tokensSeen);
  expect(request.completionTokens).toBeLessThan(LONG);
  expect(request.costUnits).toBe(BigInt(request.completionTokens) * parseFar(DEFAULT_PRICE_PER_TOKEN_FAR));
  expect(request.endedAt).toBeInstanceOf(Date);
  // the servers computed the prompt and (up to) every token served
  for (const range of ['0-3', '3-5']) {
    const served = contributions.filter((c) => `${c.blockStart}-${c.blockEnd}` === range).reduce((n, c) => n + c.generatedTokens, 0);
    expect(served).toBeGreaterThanOrEqual(tokensSeen - 1);
    expect(served).toBeLessThanOrEqual(request.completionTokens);
  }
  await eventually(async () => serverSessions().every((n) => n === 0), 10_000, 50);
  expect(await testGateway.state.sessions()).toEqual([]);
  expect(testGateway.gateway.context.generations.activeCount).toBe(0);
  return request;
}

describe('a client that leaves mid-stream', () => {
  it.each([
    ['/v1/completions', { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: LONG, temperature: 0, stream: true }],
    ['/v1/chat/completions', { model: TEST_MODEL, messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: LONG, temperature: 0, stream: true }],
    ['/inference/generate', { prompt: 'Once upon a time', max_tokens: LONG, temperature: 0 }],
  ])('%s: cancelled in the ledger with the tokens served, caches freed', async (path, body) => {
    const controller = new AbortController();
    const response = await postJson(`${testGateway.url}${path}`, body, { signal: controller.signal });
    expect(response.status).toBe(200);
    const requestId = response.headers.get('x-request-id')!;
    const data = await readUntil(response, (d) => d.length >= 8);
    // generation is under way on the servers
    expect(serverSessions().some((n) => n > 0)).toBe(true);
    controller.abort();
    const tokensSeen = path === '/inference/generate' ? (JSON.parse(data.at(-1)!) as { tokens_generated: number }).tokens_generated : data.length - 1;
    await expectCancelled(requestId, tokensSeen);
  });
});

describe('a client that leaves before a non-streaming answer', () => {
  it('cancels the generation and frees the caches', async () => {
    const controller = new AbortController();
    const pending = postJson(`${testGateway.url}/v1/completions`, { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: LONG, temperature: 0 }, { signal: controller.signal }).catch((error: Error) => error);
    const running = await eventually(async () => (await testGateway.ledger.list()).find((e) => e.request.status === 'running' && e.request.api === 'completions' && e.request.startedAt.getTime() > Date.now() - 5_000), 10_000, 20);
    await eventually(async () => serverSessions().some((n) => n > 0), 10_000, 20);
    await sleep(100);
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await expectCancelled(running.request.id, 0);
  });

  it('the gateway still answers correctly afterwards', async () => {
    const response = await postJson(`${testGateway.url}/v1/completions`, { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { choices: { text: string; finish_reason: string }[]; usage: { completion_tokens: number } };
    expect(body.choices[0]!.text).toBe(', there was a little');
    expect(body.usage.completion_tokens).toBe(5);
  });
});
