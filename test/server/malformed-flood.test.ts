/**
 * A peer that sends junk cannot buy a reply per byte: every malformed message is answered, but a stream that sends a
 * run of messages too short to be frames is closed. (Found by the soak: raw frames without the varint prefix read as a
 * run of empty messages, one error reply for every zero byte, which stalled servers' event loops for 0.5–1.5 s.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byteStream } from '@libp2p/utils';
import { peerIdFromString } from '@libp2p/peer-id';
import type { LoadedModelSource } from '../../src/model/load.js';
import { MAX_TINY_MESSAGES_IN_A_ROW } from '../../src/server/defaults.js';
import { BLOCK_PROTOCOL } from '../../src/wire/protocols.js';
import { openStories } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream, startTestServer, type TestServer } from '../support/servers.js';

let source: LoadedModelSource;
let t: TestServer;

beforeAll(async () => {
  source = await openStories();
  t = await startTestServer(source);
});

afterAll(async () => {
  await t?.stop();
  source?.close();
});

describe('malformed floods', () => {
  it('a stream of junk gets a few error replies, then is closed; an honest session on the same server still works', async () => {
    const stream = await t.client.libp2p.dialProtocol(peerIdFromString(t.server.peerId), BLOCK_PROTOCOL);
    const bytes = byteStream(stream);
    // 2,000 zero bytes: each reads as an empty length-prefixed message
    await bytes.write(new Uint8Array(2000), { signal: AbortSignal.timeout(5000) });
    const replies: string[] = [];
    const reader = (async () => {
      for (;;) {
        const chunk = await bytes.read({ signal: AbortSignal.timeout(5000) }).catch(() => undefined);
        if (!chunk) return;
        replies.push(...[...Buffer.from(chunk.subarray()).toString('latin1').matchAll(/"code":"([A-Z_]+)"/g)].map((m) => m[1]!));
      }
    })();
    await reader;
    expect(replies.length).toBeGreaterThan(0);
    expect(replies.every((code) => code === 'MALFORMED')).toBe(true);
    expect(replies.length).toBeLessThanOrEqual(MAX_TINY_MESSAGES_IN_A_ROW);

    const honest = await openBlockStream(t.client, t.server.peerId);
    expect((await honest.request({ type: 'open', sessionId: 'honest', maxLength: 64, spanStart: t.server.range.start, spanEnd: t.server.range.end, codec: 'f32' })).header.type).toBe('opened');
    const step = await honest.request({ type: 'step', sessionId: 'honest', stepId: 0, position: 0, tokens: 3 }, { dtype: 'f32', shape: [3, 64], data: randomHidden(3, 64, 1) });
    expect(step.header.type).toBe('stepResult');
    await honest.close();
  });
});
