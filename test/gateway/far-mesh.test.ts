/**
 * The Far Mesh Coordinator's API on an in-process gateway: the SSE format field by field, the status routes, the
 * errors, and the ledger record a stream leaves. The swarm starts without blocks 3–4, so the first test sees the
 * gateway unservable (503) and then servable once a server for them joins; the other tests use that full swarm.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseFar } from '../../src/gateway/ledger/money.js';
import { createBlockServer, type BlockServer } from '../../src/server/block-server.js';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { FAST } from '../support/swarm.js';
import { eventually } from '../support/wait.js';
import { expectErrorShape, postJson, Reference, sseData } from '../support/http.js';

const PRICE = '0.0001';
const PROMPT = 'Once upon a time';

let testGateway: TestGateway;
let reference: Reference;
let lateServer: BlockServer | undefined;

beforeAll(async () => {
  [testGateway, reference] = await Promise.all([startTestGateway({ spans: [{ start: 0, end: 3 }], settings: { pricePerTokenFar: PRICE } }), Reference.open()]);
});

afterAll(async () => {
  await lateServer?.stop();
  await testGateway?.close();
  await reference?.close();
});

const get = async (path: string) => {
  const response = await fetch(`${testGateway.url}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};
const generate = (body: Record<string, unknown>, init?: RequestInit) => postJson(`${testGateway.url}/inference/generate`, body, init);

/**
 * The swarm starts without blocks [3, 5); the first test watches a server for them join. Every later test needs that
 * server, so each asks for it here rather than relying on the first test having run (as it does not under -t).
 */
async function lateServerJoined(): Promise<BlockServer> {
  if (!lateServer) {
    const node = await testGateway.swarm.client();
    lateServer = await createBlockServer({ node, source: testGateway.source }, { modelId: testGateway.swarm.modelId, range: { start: 3, end: 5 }, maxBatch: 1, computeThroughput: 1000, registryOptions: FAST });
  }
  await eventually(async () => (await get('/health')).status === 200, 20_000, 200);
  return lateServer;
}

describe('a swarm missing blocks', () => {
  it('answers 503 with a reason, then serves once a server for the missing blocks joins', async () => {
    const health = await get('/health');
    expect(health.status).toBe(503);
    expect(health.body.status).toBe('unhealthy');
    expect(health.body.reason).toMatch(/no server serves blocks 3-4/);

    const models = await get('/models');
    const entry = (models.body.models as Record<string, unknown>[])[0]!;
    expect(entry.status).toBe('unavailable');
    expect(entry.coverage).toEqual([1, 1, 1, 0, 0]);
    expect((await get('/mesh/status')).body.status).toBe('disconnected');

    const refused = await generate({ prompt: PROMPT, max_tokens: 2 });
    expect(refused.status).toBe(503);
    expect(expectErrorShape(await refused.json()).message).toMatch(/blocks 3-4/);
    const openai = await postJson(`${testGateway.url}/v1/completions`, { model: TEST_MODEL, prompt: PROMPT, max_tokens: 2 });
    expect(openai.status).toBe(503);
    expectErrorShape(await openai.json());

    await lateServerJoined();
    const served = await generate({ prompt: PROMPT, max_tokens: 2, temperature: 0 });
    expect(served.status).toBe(200);
    expect(JSON.parse((await sseData(served)).at(-1)!)).toMatchObject({ done: true, tokens_generated: 2 });
  });
});

describe('GET routes', () => {
  beforeEach(lateServerJoined, 60_000);

  it('/health', async () => {
    const { status, body } = await get('/health');
    expect(status).toBe(200);
    expect(body.status).toBe('healthy');
    expect(typeof body.service).toBe('string');
    expect(typeof body.version).toBe('string');
  });

  it('/mesh/status', async () => {
    const { status, body } = await get('/mesh/status');
    expect(status).toBe(200);
    expect(body).toEqual({ model_id: TEST_MODEL, active_nodes: 2, active_sessions: 0, price_per_token_far: PRICE, status: 'connected' });
  });

  it('/models, with block coverage', async () => {
    const { status, body } = await get('/models');
    expect(status).toBe(200);
    const models = body.models as Record<string, unknown>[];
    expect(models).toHaveLength(1);
    expect(models[0]).toMatchObject({ model_id: TEST_MODEL, active_nodes: 2, price_per_token_far: PRICE, status: 'available', num_blocks: 5, coverage: [1, 1, 1, 1, 1], reason: null });
    expect(typeof models[0]!.context_length).toBe('number');
  });

  it('/mesh/status counts a live session while a stream runs', async () => {
    const controller = new AbortController();
    const response = await generate({ prompt: PROMPT, max_tokens: 1000, temperature: 0 }, { signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    await reader.read();
    expect((await get('/mesh/status')).body.active_sessions).toBe(1);
    controller.abort();
    await reader.cancel().catch(() => {});
    await eventually(async () => (await get('/mesh/status')).body.active_sessions === 0);
  });
});

describe('POST /inference/generate', () => {
  beforeEach(lateServerJoined, 60_000);

  it('streams one event per token with exactly the Far Mesh fields, then done', async () => {
    const n = 12;
    const expected = await reference.generate(PROMPT, { maxTokens: n });
    const response = await generate({ prompt: PROMPT, max_tokens: n, temperature: 0, top_p: 1, request_id: 'fm-format-1', user_wallet: '0xabc' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('x-request-id')).toBe('fm-format-1');
    const events = (await sseData(response)).map((data) => JSON.parse(data) as Record<string, unknown>);
    const tokens = events.slice(0, -1);
    expect(tokens).toHaveLength(n);
    const unit = parseFar(PRICE);
    tokens.forEach((event, i) => {
      expect(Object.keys(event).sort()).toEqual(['cost_far', 'request_id', 'token', 'tokens_generated']);
      expect(typeof event.token).toBe('string');
      expect(event.request_id).toBe('fm-format-1');
      expect(event.tokens_generated).toBe(i + 1);
      expect(typeof event.cost_far).toBe('string');
      expect(event.cost_far).toMatch(/^\d+(\.\d+)?$/);
      expect(parseFar(event.cost_far as string)).toBe(BigInt(i + 1) * unit);
    });
    expect(tokens[2]!.cost_far).toBe('0.0003'); // exact, where floats give 0.00030000000000000003
    expect(tokens.map((e) => e.token).join('')).toBe(expected.text);
    expect(events.at(-1)).toEqual({ done: true, request_id: 'fm-format-1', tokens_generated: n, cost_far: '0.0012', finish_reason: 'length' });
  });

  it('makes up a request id when none is given, the same on every event', async () => {
    const response = await generate({ prompt: PROMPT, max_tokens: 3 });
    const events = (await sseData(response)).map((data) => JSON.parse(data) as Record<string, unknown>);
    const id = response.headers.get('x-request-id');
    expect(id).toBeTruthy();
    expect(events.every((e) => e.request_id === id)).toBe(true);
    expect(events.at(-1)!.done).toBe(true);
  });

  it('leaves a completed ledger record: tokens, exact cost, wallet, and contributions per block range', async () => {
    const n = 9;
    const response = await generate({ prompt: PROMPT, max_tokens: n, temperature: 0, request_id: 'fm-ledger-1', user_wallet: '0x00000000000000000000000000000000000000f1' });
    await sseData(response);
    const entry = await testGateway.ledger.get('fm-ledger-1');
    expect(entry).toBeDefined();
    const { request, contributions } = entry!;
    const promptTokens = reference.model.tokenizer.encode(PROMPT).length;
    expect(request).toMatchObject({ id: 'fm-ledger-1', api: 'far-mesh', model: TEST_MODEL, status: 'completed', promptTokens, completionTokens: n, costUnits: BigInt(n) * parseFar(PRICE), wallet: '0x00000000000000000000000000000000000000f1', error: null, apiKeyId: null });
    expect(request.firstTokenAt).toBeInstanceOf(Date);
    expect(request.endedAt!.getTime()).toBeGreaterThanOrEqual(request.firstTokenAt!.getTime());
    expect(request.firstTokenAt!.getTime()).toBeGreaterThanOrEqual(request.startedAt.getTime());
    // every block computed every prompt token and every sampled token fed back (all but the last)
    const ranges = new Map<string, { prompt: number; generated: number }>();
    for (const c of contributions) {
      expect(c.failed).toBe(false);
      const key = `${c.blockStart}-${c.blockEnd}`;
      const sum = ranges.get(key) ?? { prompt: 0, generated: 0 };
      ranges.set(key, { prompt: sum.prompt + c.promptTokens, generated: sum.generated + c.generatedTokens });
    }
    const servers = testGateway.swarm.servers.map((s) => s.server.peerId).concat((await lateServerJoined()).peerId);
    expect(contributions.every((c) => servers.includes(c.peerId))).toBe(true);
    expect([...ranges.keys()].sort()).toEqual(['0-3', '3-5']);
    for (const sum of ranges.values()) expect(sum).toEqual({ prompt: promptTokens, generated: n - 1 });
  });

  it('a duplicate request_id is a 409 in the error shape', async () => {
    await sseData(await generate({ prompt: PROMPT, max_tokens: 1, request_id: 'fm-dup' }));
    const again = await generate({ prompt: PROMPT, max_tokens: 1, request_id: 'fm-dup' });
    expect(again.status).toBe(409);
    const error = expectErrorShape(await again.json());
    expect(error.message).toContain('fm-dup');
  });

  it('an unknown model_id is a 404 in the error shape', async () => {
    const response = await generate({ prompt: PROMPT, max_tokens: 1, model_id: 'no-such-model' });
    expect(response.status).toBe(404);
    expect(expectErrorShape(await response.json()).code).toBe('model_not_found');
  });

  it('a prompt longer than the context is a 400 that says so', async () => {
    const context = testGateway.gateway.models.get(TEST_MODEL).config.maxPositionEmbeddings;
    const prompt = 'Once upon a time there was a cat. '.repeat(Math.ceil(context / 4));
    const response = await generate({ prompt, max_tokens: 4 });
    expect(response.status).toBe(400);
    const error = expectErrorShape(await response.json());
    expect(error.param).toBe('prompt');
    expect(error.message).toContain(`context is ${context}`);
  });

  it('max_tokens past the room left is clipped to the context, as Far Mesh clients send a fixed 512', async () => {
    const context = testGateway.gateway.models.get(TEST_MODEL).config.maxPositionEmbeddings;
    const base = 'Once upon a time there was a cat. ';
    const tokensPerCopy = reference.model.tokenizer.encode(base.repeat(11)).length - reference.model.tokenizer.encode(base.repeat(10)).length;
    let prompt = base.repeat(Math.floor((context - 6) / tokensPerCopy));
    while (reference.model.tokenizer.encode(prompt).length < context - 3) prompt += 'a ';
    const promptTokens = reference.model.tokenizer.encode(prompt).length;
    expect(promptTokens).toBeLessThan(context);
    const events = (await sseData(await generate({ prompt, max_tokens: 512, temperature: 0 }))).map((d) => JSON.parse(d) as Record<string, unknown>);
    expect(events.at(-1)).toMatchObject({ done: true, tokens_generated: context - promptTokens, finish_reason: 'length' });
  });

  it('the named model_id serves', async () => {
    const response = await generate({ prompt: PROMPT, max_tokens: 2, model_id: TEST_MODEL });
    expect(response.status).toBe(200);
    expect(JSON.parse((await sseData(response)).at(-1)!)).toMatchObject({ done: true, tokens_generated: 2, cost_far: '0.0002' });
  });
});
