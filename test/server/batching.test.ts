// runs alone: starts computing processes or measures time (vitest.config.ts)
/** Batching across clients: concurrent decode steps of different sessions become one engine call. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEmbeddings } from '../../src/engine/embeddings.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import { BatchScheduler } from '../../src/server/batch-scheduler.js';
import type { SpanExecutor, SpanStep } from '../../src/engine/types.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { openStories } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream, type RawClient, startTestServer, type TestServer } from '../support/servers.js';

const H = 64;
let source: LoadedModelSource;
let t: TestServer;

beforeAll(async () => {
  source = await openStories();
  t = await startTestServer(source, { maxBatch: 8, maxCacheTokens: 8192 });
});
afterAll(async () => {
  await t?.stop();
  source?.close();
});

const groupsOver1 = (sizes: number[]) => sizes.reduce((n, count, size) => (size > 1 ? n + (count ?? 0) : n), 0);

async function openSessions(server: TestServer, count: number, maxLength: number): Promise<RawClient[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const c = await openBlockStream(server.client, server.server.peerId);
      const opened = await c.request({ type: 'open', sessionId: `s${i}`, maxLength, spanStart: 0, spanEnd: 5, codec: 'f32' });
      expect(opened.header.type).toBe('opened');
      return c;
    }),
  );
}

describe('batching across clients', () => {
  it('runs concurrent decode steps of 8 sessions as batched engine calls, with the sequential results bit for bit', async () => {
    const head = loadEmbeddings(source);
    const prompts = Array.from({ length: 8 }, (_, i) => [1, 10 + i, 20 + 3 * i]);
    const steps = 6;
    const tokensOf = (i: number, s: number) => (37 * i + 11 * s) % 500;

    // Reference: each session alone, sequentially, on a local span.
    const reference = await loadSpan(source, { start: 0, end: 5 }, { threads: 1 });
    const expected: Float32Array[][] = [];
    for (const [i, prompt] of prompts.entries()) {
      reference.openSession(`r${i}`, 16);
      await reference.step({ sessionId: `r${i}`, hidden: head.embed(prompt) });
      const outs: Float32Array[] = [];
      for (let s = 0; s < steps; s++) outs.push(await reference.step({ sessionId: `r${i}`, hidden: head.embed([tokensOf(i, s)]) }));
      expected.push(outs);
    }
    await reference.dispose();

    const clients = await openSessions(t, 8, 16);
    await Promise.all(clients.map((c, i) => c.request({ type: 'step', sessionId: `s${i}`, stepId: 0, position: 0, tokens: 3 }, { data: head.embed(prompts[i]!), shape: [3, H], dtype: 'f32' })));
    const before = { calls: t.server.service.scheduler.stats.engineCalls, batched: groupsOver1(t.server.service.scheduler.stats.groupSizes) };
    for (let s = 0; s < steps; s++) {
      const replies = await Promise.all(
        clients.map((c, i) => c.request({ type: 'step', sessionId: `s${i}`, stepId: s + 1, position: 3 + s, tokens: 1 }, { data: head.embed([tokensOf(i, s)]), shape: [1, H], dtype: 'f32' })),
      );
      replies.forEach((reply, i) => {
        expect(reply.header).toMatchObject({ type: 'stepResult', sessionId: `s${i}`, stepId: s + 1, position: 3 + s });
        // Batched and single steps give the same bytes (test/engine/batched-single.test.ts).
        expect(Array.from(reply.tensor!)).toEqual(Array.from(expected[i]![s]!));
      });
    }
    const stats = t.server.service.scheduler.stats;
    const calls = stats.engineCalls - before.calls;
    const batched = groupsOver1(stats.groupSizes) - before.batched;
    console.log(`8 sessions × ${steps} decode steps: ${calls} engine calls (group sizes ${JSON.stringify(stats.groupSizes)})`);
    expect(batched).toBeGreaterThan(0);
    expect(calls).toBeLessThan(8 * steps / 2); // at least 2 steps per call on average
    await Promise.all(clients.map((c) => c.close()));
  });

  it('keeps a bad step from failing the other steps of its batch', async () => {
    const span = t.server.span;
    const scheduler = new BatchScheduler(span, { maxBatch: 8, windowMs: 5 });
    span.openSession('ok-a', 4);
    span.openSession('ok-b', 4);
    try {
      const steps: SpanStep[] = [
        { sessionId: 'ok-a', hidden: randomHidden(1, H, 1) },
        { sessionId: 'missing', hidden: randomHidden(1, H, 2) }, // not validated by a caller: fails in the engine
        { sessionId: 'ok-b', hidden: randomHidden(1, H, 3) },
      ];
      const results = await Promise.allSettled(steps.map((s) => scheduler.submit(s)));
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'UNKNOWN_SESSION' });
    } finally {
      span.closeSession('ok-a');
      span.closeSession('ok-b');
    }
  });

  it('8 concurrent sessions get much higher aggregate throughput than 1', async () => {
    const N = 120;
    const run = async (server: TestServer, sessions: number): Promise<number> => {
      const clients = await openSessions(server, sessions, N + 8);
      const started = performance.now();
      await Promise.all(
        clients.map(async (c, i) => {
          for (let s = 0; s < N; s++) {
            const reply = await c.request({ type: 'step', sessionId: `s${i}`, stepId: s, position: s, tokens: 1 }, { data: randomHidden(1, H, s + 1), shape: [1, H], dtype: 'f16' });
            if (reply.header.type !== 'stepResult') throw new Error(JSON.stringify(reply.header));
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      await Promise.all(clients.map((c) => c.close()));
      return (sessions * N) / seconds;
    };
    const unbatched = await startTestServer(source, { maxBatch: 1, maxCacheTokens: 8192 });
    try {
      await run(t, 2); // warm-up
      const single = await run(t, 1);
      const eight = await run(t, 8);
      const eightNoBatch = await run(unbatched, 8);
      const groups = t.server.service.scheduler.stats.groupSizes;
      console.log(
        `aggregate decode tok/s through one server (clients in-process, memory transport): 1 session ${single.toFixed(0)}, ` +
          `8 sessions batched ${eight.toFixed(0)}, 8 sessions with maxBatch 1 ${eightNoBatch.toFixed(0)}; group sizes ${JSON.stringify(groups)}`,
      );
      // typically 1.5–2× on a quiet machine; 1.48× was seen while other processes loaded both cores
      expect(eight).toBeGreaterThan(1.2 * single);
      // eight vs eightNoBatch is typically 1.2–1.5× here, where the clients share the server's event loop and core
      // (bench/batching.ts measures it with the server in its own process); too close to assert on a busy machine
      expect(groups[8]).toBeGreaterThan(0);
    } finally {
      await unbatched.stop();
    }
  });
});

describe('BatchScheduler', () => {
  let span: SpanExecutor;
  beforeAll(async () => {
    span = await loadSpan(source, { start: 0, end: 5 }, { threads: 1, maxBatch: 4 });
  });
  afterAll(async () => {
    await span?.dispose();
  });

  it('runs prefills alone, groups decodes up to maxBatch, and does not wait for a lone session', async () => {
    const scheduler = new BatchScheduler(span, { maxBatch: 4, windowMs: 300 });
    for (let i = 0; i < 6; i++) span.openSession(`b${i}`, 8);
    try {
      // a lone session: the window never applies (no other session is decoding)
      await scheduler.submit({ sessionId: 'b0', hidden: randomHidden(1, H, 1) });
      const started = performance.now();
      await scheduler.submit({ sessionId: 'b0', hidden: randomHidden(1, H, 2) });
      expect(performance.now() - started).toBeLessThan(150);

      scheduler.stats.groupSizes.length = 0;
      await Promise.all([
        scheduler.submit({ sessionId: 'b1', hidden: randomHidden(3, H, 3) }),
        ...[2, 3, 4, 5, 0].map((i) => scheduler.submit({ sessionId: `b${i}`, hidden: randomHidden(1, H, 4 + i) })),
      ]);
      // the prefill ran alone; 5 decodes → 4 + 1
      expect(scheduler.stats.groupSizes[4]).toBe(1);
      expect(scheduler.stats.groupSizes[1]).toBe(2);
    } finally {
      for (let i = 0; i < 6; i++) span.closeSession(`b${i}`);
    }
  });

  it('waits for sessions that come back less often than activeMs, but not for one far slower than the others', async () => {
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const scheduler = new BatchScheduler(span, { maxBatch: 4, windowMs: 150, activeMs: 20 });
    for (const id of ['a', 'b', 'slow']) span.openSession(id, 64);
    const decode = (id: string, seed: number) => scheduler.submit({ sessionId: id, hidden: randomHidden(1, H, seed) });
    try {
      // a and b step together every ~60 ms, less often than activeMs (a slow multi-hop round): b's step, 40 ms after
      // a's, joins a's call
      for (let round = 0; round < 3; round++) {
        await Promise.all([decode('a', round), decode('b', 10 + round)]);
        await sleep(60);
      }
      scheduler.stats.groupSizes.length = 0;
      await Promise.all([decode('a', 20), sleep(40).then(() => decode('b', 21))]);
      expect(scheduler.stats.groupSizes[2], JSON.stringify(scheduler.stats.groupSizes)).toBe(1);
      expect(scheduler.stats.groupSizes[1]).toBeUndefined();

      // 'slow' steps 300 ms apart, and just did: a's step does not wait the window for it
      await decode('slow', 30);
      await sleep(300);
      await decode('slow', 31);
      const started = performance.now();
      await decode('a', 32);
      expect(performance.now() - started).toBeLessThan(120);
    } finally {
      for (const id of ['a', 'b', 'slow']) span.closeSession(id);
    }
  });
});
