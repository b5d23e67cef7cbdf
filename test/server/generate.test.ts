/** Whole-model mode (--blocks all): /corolla/generate/1.0.0 and the remoteGenerate helper. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lpStream } from '@libp2p/utils';
import { peerIdFromString } from '@libp2p/peer-id';
import { argmax } from '../../src/inference/sampling/index.js';
import { loadLocalModel } from '../../src/inference/local-model.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { createTokenizer } from '../../src/model/tokenizer/index.js';
import { GENERATE_PROTOCOL } from '../../src/server/generate-protocol.js';
import { remoteGenerate } from '../../src/client/generate-client.js';
import { RemoteGenerateError } from '../../src/client/errors.js';
import { openStories } from '../support/models.js';
import { openBlockStream, startTestServer, type TestServer } from '../support/servers.js';
import { sleep } from '../support/wait.js';

let source: LoadedModelSource;
let t: TestServer;

beforeAll(async () => {
  source = await openStories();
  t = await startTestServer(source, { range: 'all', maxCacheTokens: 4096, maxBatch: 8 });
});
afterAll(async () => {
  await t?.stop();
  source?.close();
});

async function collect(iterable: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const token of iterable) out.push(token);
  return out;
}

describe('whole-model generation', () => {
  it('announces span [0, numBlocks) and streams the same greedy tokens as a local model', async () => {
    expect(t.server.wholeModel).toBe(true);
    expect(t.server.record()).toMatchObject({ span: { start: 0, end: 5 }, numBlocks: 5, state: 'online' });
    const local = await loadLocalModel(source);
    const session = await local.openSession(64);
    const expected: number[] = [];
    let logits = await session.next([1]);
    for (let i = 0; i < 40; i++) {
      const token = argmax(logits);
      if (token === 2) break;
      expected.push(token);
      logits = await session.next([token]);
    }
    await session.close();
    await local.close();

    const generator = remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1], maxTokens: 40, sampling: { temperature: 0 } });
    const tokens: number[] = [];
    let result = await generator.next();
    while (!result.done) {
      tokens.push(result.value);
      result = await generator.next();
    }
    expect(tokens).toEqual(expected.slice(0, 40));
    expect(result.value).toEqual({ finishReason: 'length', tokens: 40 });
    const text = createTokenizer(source.tokenizer!).decode(tokens);
    expect(text.trimStart()).toMatch(/^Once upon a time, there was a little girl named Lily/);
    expect(t.server.service.activeSessions).toBe(0);
  });

  it('stops on stop tokens (not emitted), and honours a seed', async () => {
    // stories260K (llama2.c) ends a story with BOS (1), not EOS (2): make 1 the stop token
    const story = { temperature: 1, seed: 4 };
    const generator = remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1], maxTokens: 1000, sampling: story, stopTokens: [1, 2] });
    const all: number[] = [];
    let result = await generator.next();
    for (; !result.done; result = await generator.next()) all.push(result.value);
    expect(result.value).toEqual({ finishReason: 'stop', tokens: all.length });
    expect(all.length).toBe(232);
    expect(all).not.toContain(1);
    const stopAt = all[5]!;
    const cut = await collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1], maxTokens: 1000, sampling: story, stopTokens: [stopAt] }));
    expect(cut).toEqual(all.slice(0, all.indexOf(stopAt)));
    const sampled = { temperature: 0.9, topK: 40, seed: 1234 };
    const a = await collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1, 403], maxTokens: 30, sampling: sampled }));
    const b = await collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1, 403], maxTokens: 30, sampling: sampled }));
    expect(a).toEqual(b);
    expect(await collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1], maxTokens: 0 }))).toEqual([]);
  });

  it('batches concurrent generations and gives each the result it gets alone', async () => {
    const prompts = [[1], [1, 403], [1, 403, 407], [1, 385]];
    const alone: number[][] = [];
    for (const prompt of prompts) alone.push(await collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt, maxTokens: 24, stopTokens: [] })));
    const before = t.server.service.scheduler.stats.groupSizes.reduce((n, c, size) => (size > 1 ? n + (c ?? 0) : n), 0);
    const together = await Promise.all(prompts.map((prompt) => collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt, maxTokens: 24, stopTokens: [] }))));
    expect(together).toEqual(alone);
    const after = t.server.service.scheduler.stats.groupSizes.reduce((n, c, size) => (size > 1 ? n + (c ?? 0) : n), 0);
    expect(after).toBeGreaterThan(before);
  });

  it('rejects bad requests with typed errors', async () => {
    const attempt = (request: unknown) => collect(remoteGenerate(t.client.libp2p, t.server.peerId, request as never));
    await expect(attempt({ prompt: [1, 9999], maxTokens: 3 })).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(/prompt\[1\] must be a token id in 0\.\.511/) });
    await expect(attempt({ prompt: [], maxTokens: 3 })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(attempt({ prompt: [1], maxTokens: -1 })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(attempt({ prompt: [1], maxTokens: 3, bogus: true })).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(/unknown field "bogus"/) });
    await expect(attempt({ prompt: [1], maxTokens: 3, sampling: { temperature: -1 } })).rejects.toMatchObject({ code: 'INVALID_SAMPLING_OPTIONS' });
    await expect(attempt({ prompt: [1], maxTokens: 3, sampling: { beam: 4 } })).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    await expect(attempt({ prompt: [1], maxTokens: 5000 })).rejects.toMatchObject({ code: 'REQUEST_TOO_LARGE' });
    // the KV budget is shared with block-protocol sessions
    const hog = await openBlockStream(t.client, t.server.peerId);
    // (issue 7: a session is at most the model's context of 2048 tokens, so the hog holds two)
    expect((await hog.request({ type: 'open', sessionId: 'hog', maxLength: 1500, spanStart: 0, spanEnd: 5, codec: 'f16' })).header.type).toBe('opened');
    expect((await hog.request({ type: 'open', sessionId: 'hog2', maxLength: 1500, spanStart: 0, spanEnd: 5, codec: 'f16' })).header.type).toBe('opened');
    await expect(attempt({ prompt: [1], maxTokens: 2000 })).rejects.toMatchObject({ code: 'CACHE_FULL' });
    await hog.close();
    // not JSON at all
    const stream = await t.client.libp2p.dialProtocol(peerIdFromString(t.server.peerId), GENERATE_PROTOCOL);
    const lp = lpStream(stream);
    await lp.write(new TextEncoder().encode('{{{'));
    expect(JSON.parse(new TextDecoder().decode((await lp.read()).subarray()))).toMatchObject({ error: { code: 'INVALID_REQUEST' } });
    await stream.close().catch(() => {});
    // a peer without the protocol
    await expect(collect(remoteGenerate(t.node.libp2p, t.client.peerId, { prompt: [1], maxTokens: 1 }))).rejects.toBeInstanceOf(RemoteGenerateError);
  });

  it('cancels on the server when the client stops reading', async () => {
    const generator = remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1], maxTokens: 1500, stopTokens: [] });
    let count = 0;
    for await (const _ of generator) if (++count === 3) break;
    for (let i = 0; i < 100 && t.server.service.activeSessions > 0; i++) await sleep(20);
    expect(t.server.service.activeSessions).toBe(0);
    expect(t.server.span.cacheTokensLeft()).toBe(4096);
    const aborted = new AbortController();
    const done = collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1], maxTokens: 1500, stopTokens: [] }, { signal: aborted.signal }));
    await sleep(50);
    aborted.abort(new Error('user cancelled'));
    await expect(done).rejects.toThrow(/user cancelled/);
    for (let i = 0; i < 100 && t.server.service.activeSessions > 0; i++) await sleep(20);
    expect(t.server.service.activeSessions).toBe(0);
  });
});
