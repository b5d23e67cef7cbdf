/**
 * The dashboard's data: GET /dashboard/feed (SSE `snapshot` events) and GET /dashboard/snapshot, on real in-process
 * swarms: one that covers the model, one that lacks its last blocks.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DashboardSnapshot } from '../../src/gateway/routes/dashboard.js';
import { formatFar, parseFar } from '../../src/gateway/ledger/money.js';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';

const PUSH_MS = 200;

/** The `snapshot` events of a gateway's feed, parsed, until `signal` aborts. */
async function* feed(url: string, signal: AbortSignal): AsyncGenerator<DashboardSnapshot> {
  const response = await fetch(`${url}/dashboard/feed`, { signal });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const lines = buffer.slice(0, end).split('\n');
        buffer = buffer.slice(end + 2);
        expect(lines[0]).toBe('event: snapshot');
        yield JSON.parse(lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')) as DashboardSnapshot;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** The first snapshot of a new feed connection that satisfies `test` (within `timeoutMs`). */
async function snapshotWhere(url: string, test: (s: DashboardSnapshot) => boolean, timeoutMs = 15_000): Promise<DashboardSnapshot> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no snapshot matched within ${timeoutMs} ms`)), timeoutMs);
  try {
    for await (const snapshot of feed(url, controller.signal)) if (test(snapshot)) return snapshot;
    throw new Error('the feed ended');
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

describe('dashboard feed', () => {
  let covered: TestGateway;
  let partial: TestGateway;

  beforeAll(async () => {
    [covered, partial] = await Promise.all([
      startTestGateway({ settings: { dashboardPushMs: PUSH_MS } }),
      // a push interval far beyond the test's waits: whatever arrives is the snapshot sent on connect
      startTestGateway({ spans: [{ start: 0, end: 3 }], settings: { dashboardPushMs: 60_000 } }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([covered?.close(), partial?.close()]);
  });

  it('sends the swarm at once on connect: the model, its servers with their spans, and full coverage', async () => {
    const snapshot = await snapshotWhere(covered.url, () => true);
    expect(snapshot.gateway).toEqual({ id: covered.gateway.context.settings.gatewayId, version: covered.gateway.context.settings.version, price_per_token_far: '0.0001' });
    expect(Math.abs(snapshot.time - Date.now())).toBeLessThan(10_000);
    expect(snapshot.models).toHaveLength(1);
    const [model] = snapshot.models;
    expect(model!.name).toBe(TEST_MODEL);
    expect(model!.status).toBe('available');
    expect(model!.reason).toBeNull();
    expect(model!.numBlocks).toBe(5);
    expect(model!.coverage).toEqual([1, 1, 1, 1, 1]);
    const spans = model!.servers.map((s) => ({ peerId: s.peerId, ...s.blocks }));
    expect(spans).toEqual(covered.swarm.servers.map((s) => ({ peerId: s.server.peerId, start: s.start, end: s.end })));
    expect(snapshot.sessions).toEqual([]);
  });

  it('shows a block without a server as 0 and the model as unavailable, saying which blocks', async () => {
    const started = Date.now();
    const snapshot = await snapshotWhere(partial.url, () => true, 10_000);
    expect(Date.now() - started).toBeLessThan(10_000);
    const [model] = snapshot.models;
    expect(model!.coverage).toEqual([1, 1, 1, 0, 0]);
    expect(model!.status).toBe('unavailable');
    expect(model!.reason).toMatch(/block.*3/);
    expect(model!.servers.map((s) => s.blocks)).toEqual([{ start: 0, end: 3 }]);
  });

  it('answers GET /dashboard/snapshot with the same JSON once', async () => {
    const response = await fetch(`${partial.url}/dashboard/snapshot`);
    expect(response.status).toBe(200);
    const snapshot = (await response.json()) as DashboardSnapshot;
    expect(Object.keys(snapshot).sort()).toEqual(['gateway', 'models', 'recent', 'sessions', 'time']);
    expect(snapshot.models[0]!.coverage).toEqual([1, 1, 1, 0, 0]);
  });

  it('shows a live session in a later snapshot while a request streams, then the request in `recent` once it ends', async () => {
    const controller = new AbortController();
    const snapshots = feed(covered.url, controller.signal);
    const next = async (test: (s: DashboardSnapshot) => boolean) => {
      for (;;) {
        const { value, done } = await snapshots.next();
        if (done) throw new Error('the feed ended');
        if (test(value)) return value;
      }
    };
    try {
      const before = await next(() => true);
      expect(before.sessions).toEqual([]);

      const response = await fetch(`${covered.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // long enough (seconds, even on an idle machine) for the live session's token count to be updated at least once
        body: JSON.stringify({ model: TEST_MODEL, messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: 1500, temperature: 0, stream: true, stream_options: { include_usage: true } }),
      });
      expect(response.status).toBe(200);
      const requestId = response.headers.get('x-request-id')!;
      expect(requestId).toMatch(/^req_/);

      const live = await next((s) => s.sessions.some((x) => x.id === requestId && x.completionTokens > 0));
      const session = live.sessions.find((x) => x.id === requestId)!;
      expect(session).toMatchObject({ model: TEST_MODEL, api: 'chat.completions', gatewayId: covered.gateway.context.settings.gatewayId });
      expect(session.promptTokens).toBeGreaterThan(0);
      expect(session.servers.length).toBeGreaterThan(0);
      for (const peer of session.servers) expect(covered.swarm.servers.map((s) => s.server.peerId)).toContain(peer);

      const body = await response.text();
      const chunks = body.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)));
      const usage = chunks.find((chunk) => chunk.usage)!.usage as { prompt_tokens: number; completion_tokens: number };
      expect(session.completionTokens).toBeLessThan(usage.completion_tokens);

      const after = await next((s) => s.recent.some((r) => r.id === requestId && r.status !== 'running'));
      expect(after.sessions.some((x) => x.id === requestId)).toBe(false);
      const recent = after.recent.find((r) => r.id === requestId)!;
      expect(recent).toMatchObject({ model: TEST_MODEL, api: 'chat.completions', status: 'completed', promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens });
      expect(recent.costFar).toBe(formatFar(parseFar('0.0001') * BigInt(usage.completion_tokens)));
      expect(recent.endedAt).toBeGreaterThanOrEqual(recent.startedAt);
      // the pages need no API key, so the feed leaves out who paid
      expect(Object.keys(recent)).not.toContain('apiKeyId');
      expect(Object.keys(recent)).not.toContain('wallet');
    } finally {
      controller.abort();
      await snapshots.return(undefined).catch(() => {});
    }
  });

  it('stops reading the ledger once the last dashboard disconnects', async () => {
    const list = vi.spyOn(covered.ledger, 'list');
    try {
      const controller = new AbortController();
      let received = 0;
      for await (const _snapshot of feed(covered.url, controller.signal)) if (++received === 3) break;
      controller.abort();
      // one on connect plus one per push
      expect(list.mock.calls.length).toBeGreaterThanOrEqual(3);
      await new Promise((resolve) => setTimeout(resolve, 2 * PUSH_MS));
      const calls = list.mock.calls.length;
      await new Promise((resolve) => setTimeout(resolve, 5 * PUSH_MS));
      expect(list.mock.calls.length).toBe(calls);
    } finally {
      list.mockRestore();
    }
  });
});
