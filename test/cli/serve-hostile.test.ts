/**
 * Hostile peers against a real `corolla serve` process over TCP: a KV-cache hog, a session hoarder, a step with a
 * poisoned tensor for a session that does not exist and an oversized frame are each refused with a typed error,
 * while an honest peer's session on the same process keeps working and stays exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { SpanExecutor } from '../../src/engine/types.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { encodeMessage, MAX_HEADER_BYTES, MAX_STEP_TOKENS, type DecodedMessage } from '../../src/wire/messages.js';
import { killCorollaProcesses, spawnCorolla } from '../support/cli.js';
import { openStories, STORIES_GGUF } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream, sendLengthPrefixed, type RawClient } from '../support/servers.js';
import { freePort } from '../../src/util/processes.js';

const H = 64;
let source: LoadedModelSource;
let reference: SpanExecutor;
const nodes: SwarmNode[] = [];

beforeAll(async () => {
  source = await openStories();
  reference = await loadSpan(source, { start: 0, end: 5 }, { threads: 1 });
});
afterAll(async () => {
  killCorollaProcesses();
  for (const node of nodes) await node.stop().catch(() => {});
  await reference?.dispose();
  source?.close();
});

async function peerDialing(address: string): Promise<SwarmNode> {
  const node = await createSwarmNode({ transport: 'tcp' });
  nodes.push(node);
  await node.connect(address);
  return node;
}

const kind = (reply: DecodedMessage) => reply.header as { type: string; code?: string; message?: string };
const open = (c: RawClient, sessionId: string, maxLength: number) => c.request({ type: 'open', sessionId, maxLength, spanStart: 0, spanEnd: 5, codec: 'f32' });

describe('corolla serve under hostile peers', () => {
  it('refuses a cache hog, a session hoarder, a poisoned step and an oversized frame; the honest session stays exact', async () => {
    const port = await freePort();
    const proc = spawnCorolla(['serve', '--model', STORIES_GGUF, '--blocks', '0:5', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--max-cache-tokens', '1000', '--peer-cache-share', '0.25', '--max-sessions-per-peer', '3']);
    const line = await proc.firstLine;
    const peerId = /^ready (12D3KooW\w+) 0:5$/.exec(line)?.[1];
    expect(peerId, line).toBeDefined();
    const address = `/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`;
    const hogNode = await peerDialing(address);
    const honestNode = await peerDialing(address);

    // 1. the hog takes the whole idle server (borrowed), the honest peer still gets in and the hog is preempted
    const hog = await openBlockStream(hogNode, peerId!);
    expect(kind(await open(hog, 'all', 1000))).toMatchObject({ type: 'opened', cacheTokensLeft: 0 });
    const honest = await openBlockStream(honestNode, peerId!);
    expect(kind(await open(honest, 'honest', 64))).toMatchObject({ type: 'opened' });
    reference.openSession('honest', 64);
    let position = 0;
    const honestStep = async (rows: number, seed: number) => {
      const hidden = randomHidden(rows, H, seed);
      const reply = await honest.request({ type: 'step', sessionId: 'honest', stepId: seed, position, tokens: rows }, { data: hidden, shape: [rows, H], dtype: 'f32' });
      expect(reply.header.type).toBe('stepResult');
      expect(reply.tensor).toEqual(await reference.step({ sessionId: 'honest', hidden }));
      position += rows;
    };
    await honestStep(5, 1);
    const preempted = await hog.request({ type: 'step', sessionId: 'all', stepId: 0, position: 0, tokens: 1 }, { data: randomHidden(1, H, 2), shape: [1, H], dtype: 'f32' });
    expect(kind(preempted)).toMatchObject({ type: 'error', code: 'SESSION_EXPIRED', message: expect.stringMatching(/preempted/) });

    // 2. beyond its fair share (250 of 1000) while the honest peer is there: QUOTA_EXCEEDED
    expect(kind(await open(hog, 'greedy', 251))).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED' });
    // 3. more sessions than its quota (3): QUOTA_EXCEEDED
    for (const id of ['a', 'b', 'c']) expect(kind(await open(hog, id, 8)).type).toBe('opened');
    expect(kind(await open(hog, 'd', 8))).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED' });
    await honestStep(1, 3);

    // 4. a step with a poisoned int8 tensor for a session that does not exist: refused from its header
    const poisoned = encodeMessage({ type: 'step', sessionId: 'ghost', stepId: 1, position: 0, tokens: 1 }, { data: new Float32Array(H).fill(1), shape: [1, H], dtype: 'int8' });
    new DataView(poisoned.buffer).setFloat32(6 + ((poisoned[4]! << 8) | poisoned[5]!), Number.NaN, true);
    sendLengthPrefixed(hog.stream, poisoned);
    expect(kind(await hog.channel.receive({ signal: AbortSignal.timeout(10_000) }))).toMatchObject({ type: 'error', code: 'UNKNOWN_SESSION' });

    // 5. a frame over the model-derived limit (about 1 MiB for this model, not 64 MiB): FRAME_TOO_LARGE. (Just over
    // it: a frame far over it is cut off by the stream's read buffer, and the reset may overtake the typed reply.)
    const huge = new Uint8Array(6 + MAX_HEADER_BYTES + H * MAX_STEP_TOKENS * 4 + 4);
    new DataView(huge.buffer).setUint32(0, huge.length - 4);
    sendLengthPrefixed(hog.stream, huge);
    expect(kind(await hog.channel.receive({ signal: AbortSignal.timeout(10_000) }))).toMatchObject({ type: 'error', code: 'FRAME_TOO_LARGE' });

    await honestStep(1, 4);
    await honestStep(1, 5);
    reference.closeSession('honest');
    expect((await honest.request({ type: 'close', sessionId: 'honest' })).header).toEqual({ type: 'closed', sessionId: 'honest' });
    await honest.close();
    proc.child.kill('SIGTERM');
  });
});
