/** The server's typed session events, and what a peer is told when the engine fails. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelError } from '../../src/engine/errors.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import type { SessionCloseEvent, SessionOpenEvent } from '../../src/server/events.js';
import { lineLogger } from '../../src/util/logger.js';
import { openStories } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream, startTestServer, type TestServer } from '../support/servers.js';
import { sleep } from '../support/wait.js';

const H = 64;
let source: LoadedModelSource;
let t: TestServer;

beforeAll(async () => {
  source = await openStories();
  t = await startTestServer(source, { maxCacheTokens: 1024 });
});
afterAll(async () => {
  await t?.stop();
  source?.close();
});

const step = (sessionId: string, stepId: number, position: number, tokens: number) =>
  [{ type: 'step', sessionId, stepId, position, tokens } as const, { data: randomHidden(tokens, H, stepId + 1), shape: [tokens, H], dtype: 'f32' } as const] as const;

describe('session events', () => {
  it('a session yields session:open and session:close with the client peer id, its blocks and the tokens it ran', async () => {
    const opened: SessionOpenEvent[] = [];
    const closed: SessionCloseEvent[] = [];
    t.server.addEventListener('session:open', (event) => opened.push(event.detail));
    t.server.addEventListener('session:close', (event) => closed.push(event.detail));
    const c = await openBlockStream(t.client, t.server.peerId);
    const sessionStarted = performance.now();
    await c.request({ type: 'open', sessionId: 'ev', maxLength: 16, spanStart: 0, spanEnd: 5, codec: 'f16' });
    expect(opened).toEqual([{ sessionId: 'ev', peerId: t.client.peerId, blocks: { start: 0, end: 5 }, maxLength: 16, tokens: 0 }]);

    // a 4-token prefill, two decode steps, and a replay of the last one: 4 + 1 + 1 + 1 rows through the span
    for (const [i, [position, tokens]] of [[0, 4], [4, 1], [5, 1], [5, 1]].entries()) {
      expect((await c.request(...step('ev', i, position!, tokens!))).header.type).toBe('stepResult');
    }
    expect(closed).toEqual([]);
    await c.request({ type: 'close', sessionId: 'ev' });
    expect(closed).toMatchObject([{ sessionId: 'ev', peerId: t.client.peerId, blocks: { start: 0, end: 5 }, maxLength: 16, tokens: 7, steps: 4, reason: 'closed' }]);
    // the session's life as the server saw it: positive, and within what the client saw
    expect(closed[0]!.durationMs).toBeGreaterThan(0);
    expect(closed[0]!.durationMs).toBeLessThanOrEqual(performance.now() - sessionStarted + 1);

    // a session whose stream ends closes with the stream
    await c.request({ type: 'open', sessionId: 'gone', maxLength: 8, spanStart: 0, spanEnd: 5, codec: 'f32' });
    await c.request(...step('gone', 0, 0, 2));
    await c.close();
    for (let i = 0; i < 50 && closed.length < 2; i++) await sleep(20);
    expect(closed[1]).toMatchObject({ sessionId: 'gone', peerId: t.client.peerId, tokens: 2, steps: 1, reason: 'stream-ended' });
  });
});

describe('engine failures', () => {
  it('reach the client as INTERNAL "internal error", never with the exception text', async () => {
    const logged: string[] = [];
    const s = await startTestServer(source, { maxCacheTokens: 1024 }, { logger: lineLogger((line) => logged.push(line)) });
    const span = s.server.span;
    const c = await openBlockStream(s.client, s.server.peerId);
    try {
      // (issue 7: a forward runs through the scheduler as a step of a temporary session)
      span.step = () => Promise.reject(new Error('ENOENT /home/secret/model.onnx'));
      const forward = await c.request({ type: 'forward', requestId: 'f', spanStart: 0, spanEnd: 5 }, { data: randomHidden(1, H, 1), shape: [1, H], dtype: 'f32' });
      expect(forward.header).toEqual({ type: 'error', code: 'INTERNAL', message: 'internal error', requestId: 'f' });

      await c.request({ type: 'open', sessionId: 'k', maxLength: 8, spanStart: 0, spanEnd: 5, codec: 'f32' });
      span.step = () => Promise.reject(new KernelError('span [0, 5) failed to run: onnxruntime: Non-zero status code at /onnxruntime/src/attention.cc:42'));
      const failed = await c.request(...step('k', 7, 0, 1));
      expect(failed.header).toEqual({ type: 'error', code: 'INTERNAL', message: 'internal error', sessionId: 'k', stepId: 7 });
      // the operator sees what happened
      expect(logged.join('\n')).toMatch(/forward failed: Error: ENOENT \/home\/secret[\s\S]*step failed: KernelError: span \[0, 5\) failed to run/);
    } finally {
      await c.close();
      await s.stop();
    }
  });
});
