/**
 * Bounded work per request (issue 7): a step carries at most maxStepTokens tokens, a session is no longer than the
 * model's context, and `forward` reserves KV budget and runs through the scheduler (in prefill chunks) like a step.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { SpanExecutor } from '../../src/engine/types.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { DEFAULT_MAX_STEP_TOKENS } from '../../src/server/defaults.js';
import { openStories } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream, startTestServer, type TestServer } from '../support/servers.js';

const H = 64;
let source: LoadedModelSource;
let t: TestServer;
let reference: SpanExecutor;

beforeAll(async () => {
  source = await openStories();
  t = await startTestServer(source, { maxCacheTokens: 4096, maxFrameBytes: 1024 * 1024, idleTimeoutMs: 60_000 });
  reference = await loadSpan(source, { start: 0, end: 5 }, { threads: 1 });
});

afterAll(async () => {
  await t?.stop();
  await reference?.dispose();
  source?.close();
});

const sameBits = (a: Float32Array, b: Float32Array) => expect(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))).toBe(true);

it('refuses a session longer than the model context (REQUEST_TOO_LARGE); one of exactly the context opens', async () => {
  const context = source.config.maxPositionEmbeddings;
  const c = await openBlockStream(t.client, t.server.peerId);
  const tooLong = await c.request({ type: 'open', sessionId: 'long', maxLength: context + 1, spanStart: 0, spanEnd: 5, codec: 'f32' });
  expect(tooLong.header).toMatchObject({ type: 'error', code: 'REQUEST_TOO_LARGE', sessionId: 'long' });
  expect((tooLong.header as { message: string }).message).toMatch(new RegExp(`exceeds the model's context of ${context} tokens`));
  expect((await c.request({ type: 'open', sessionId: 'full', maxLength: context, spanStart: 0, spanEnd: 5, codec: 'f32' })).header.type).toBe('opened');
  await c.close();
});

it(`refuses a step of more than ${DEFAULT_MAX_STEP_TOKENS} tokens (REQUEST_TOO_LARGE) without touching the cache`, async () => {
  const c = await openBlockStream(t.client, t.server.peerId);
  await c.request({ type: 'open', sessionId: 's', maxLength: 1200, spanStart: 0, spanEnd: 5, codec: 'f32' });
  const n = DEFAULT_MAX_STEP_TOKENS + 1;
  const big = await c.request({ type: 'step', sessionId: 's', stepId: 0, position: 0, tokens: n }, { data: randomHidden(n, H, 1), shape: [n, H], dtype: 'f32' });
  expect(big.header).toMatchObject({ type: 'error', code: 'REQUEST_TOO_LARGE' });
  const ok = await c.request({ type: 'step', sessionId: 's', stepId: 1, position: 0, tokens: n - 1 }, { data: randomHidden(n - 1, H, 2), shape: [n - 1, H], dtype: 'f32' });
  expect(ok.header).toMatchObject({ type: 'stepResult', position: 0 });
  await c.close();
});

it('a forward reserves KV budget while it runs (CACHE_FULL when it does not fit) and goes through the scheduler in chunks', async () => {
  const c = await openBlockStream(t.client, t.server.peerId);
  const left = t.server.service.cacheTokensLeft();
  // leave 50 tokens of budget
  for (let i = 0, rest = left - 50; rest > 0; i++, rest -= 2000) {
    const open = await c.request({ type: 'open', sessionId: `hog${i}`, maxLength: Math.min(2000, rest), spanStart: 0, spanEnd: 5, codec: 'f32' });
    expect(open.header.type).toBe('opened');
  }
  const hidden = randomHidden(600, H, 7);
  const refused = await c.request({ type: 'forward', requestId: 'f', spanStart: 0, spanEnd: 5 }, { data: hidden, shape: [600, H], dtype: 'f32' });
  expect(refused.header).toMatchObject({ type: 'error', code: 'CACHE_FULL', requestId: 'f' });
  await c.close(); // frees the hogs
  for (let i = 0; i < 100 && t.server.service.activeSessions !== 0; i++) await new Promise((r) => setTimeout(r, 20));

  const d = await openBlockStream(t.client, t.server.peerId);
  const stats = t.server.service.scheduler.stats;
  const before = { steps: stats.steps, calls: stats.engineCalls };
  const reply = await d.request({ type: 'forward', requestId: 'g', spanStart: 0, spanEnd: 5 }, { data: hidden, shape: [600, H], dtype: 'f32' });
  expect(reply.header).toMatchObject({ type: 'forwardResult', requestId: 'g' });
  sameBits(reply.tensor!, await reference.forward(hidden, 600));
  expect(stats.steps - before.steps).toBe(1);
  expect(stats.engineCalls - before.calls).toBe(Math.ceil(600 / t.server.service.span.prefillChunkTokens));
  expect(t.server.service.cacheTokensLeft()).toBe(left);
  await d.close();
});
