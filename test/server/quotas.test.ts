/**
 * Hostile peers against a real block server (stories260K, real libp2p streams): each attack is refused with a typed
 * error or bounded, and an honest peer's session on the same server keeps working and stays exact.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openRemoteSpan } from '../../src/client/remote-span.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { SpanExecutor } from '../../src/engine/types.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import type { BlockServerOptions } from '../../src/server/block-server.js';
import { DEFAULT_MAX_STEP_TOKENS } from '../../src/server/defaults.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { encodeMessage, MAX_HEADER_BYTES, MAX_STEP_TOKENS, type DecodedMessage } from '../../src/wire/messages.js';
import { openStories } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream, sendLengthPrefixed, startTestServer, type RawClient, type TestServer } from '../support/servers.js';
import { eventually, sleep } from '../support/wait.js';

const H = 64;
let source: LoadedModelSource;
let reference: SpanExecutor;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(async () => {
  source = await openStories();
  reference = await loadSpan(source, { start: 0, end: 5 }, { threads: 1 });
});
afterEach(async () => {
  for (const stop of cleanup.splice(0).reverse()) await stop().catch(() => {});
});
afterAll(async () => {
  await reference?.dispose();
  source?.close();
});

async function server(options: Partial<BlockServerOptions> = {}): Promise<TestServer> {
  const t = await startTestServer(source, { maxCacheTokens: 1024, ...options });
  cleanup.push(() => t.stop());
  return t;
}

/** Another peer (its own libp2p node and peer id) connected to the server. */
async function peer(t: TestServer): Promise<SwarmNode> {
  const node = await createSwarmNode({ transport: 'memory', bootstrap: [t.node.multiaddrs[0]!] });
  cleanup.push(() => node.stop());
  return node;
}

const open = (c: RawClient, sessionId: string, maxLength: number, codec: 'f32' | 'f16' | 'int8' = 'f32') =>
  c.request({ type: 'open', sessionId, maxLength, spanStart: 0, spanEnd: 5, codec });
const step = (c: RawClient, sessionId: string, stepId: number, position: number, hidden: Float32Array, dtype: 'f32' | 'f16' | 'int8' = 'f32') =>
  c.request({ type: 'step', sessionId, stepId, position, tokens: hidden.length / H }, { data: hidden, shape: [hidden.length / H, H], dtype });

const errorOf = (reply: DecodedMessage) => reply.header as { type: string; code?: string; message?: string };

/** An honest session: opens, runs a prompt and two decode steps, and checks every output against a local span. */
async function honestSession(c: RawClient, id: string, maxLength = 32): Promise<void> {
  expect(errorOf(await open(c, id, maxLength))).toMatchObject({ type: 'opened' });
  reference.openSession(id, maxLength);
  try {
    let position = 0;
    for (const [i, hidden] of [randomHidden(4, H, 1), randomHidden(1, H, 2), randomHidden(1, H, 3)].entries()) {
      const reply = await step(c, id, i, position, hidden);
      expect(reply.header.type).toBe('stepResult');
      expect(reply.tensor).toEqual(await reference.step({ sessionId: id, hidden }));
      position += hidden.length / H;
    }
  } finally {
    reference.closeSession(id);
  }
}

/** An int8 step frame whose first scale is NaN: decoding its tensor would fail with MALFORMED. */
function poisonedStep(sessionId: string, width: number): Uint8Array {
  const frame = encodeMessage({ type: 'step', sessionId, stepId: 7, position: 0, tokens: 1 }, { data: new Float32Array(width).fill(0.5), shape: [1, width], dtype: 'int8' });
  const headerLength = (frame[4]! << 8) | frame[5]!;
  new DataView(frame.buffer).setFloat32(6 + headerLength, Number.NaN, true);
  return frame;
}

describe('KV-cache share', () => {
  it('a peer alone may borrow the whole budget, but loses what is above its share when another peer needs room', async () => {
    const t = await server({ maxCacheTokens: 1024 });
    const hog = await openBlockStream(t.client, t.server.peerId);
    expect(errorOf(await open(hog, 'all', 1024))).toMatchObject({ type: 'opened', cacheTokensLeft: 0 });

    const honest = await openBlockStream(await peer(t), t.server.peerId);
    await honestSession(honest, 'honest', 64);
    // the hog's borrowed session was preempted: it learns so, and can replay elsewhere
    const late = await step(hog, 'all', 0, 0, randomHidden(1, H, 9));
    expect(errorOf(late)).toMatchObject({ type: 'error', code: 'SESSION_EXPIRED' });
    expect(errorOf(late).message).toMatch(/preempted/);
    // with another peer on the server, the hog gets its fair share (1/4 of 1024) and no more
    expect(errorOf(await open(hog, 'again', 300))).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED' });
    expect(errorOf(await open(hog, 'fair', 256))).toMatchObject({ type: 'opened' });
    expect(errorOf(await open(hog, 'more', 1))).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED' });
    // and the server stays in everyone's routes: room is left for others
    expect(t.server.span.cacheTokensLeft()).toBe(1024 - 64 - 256);
    await honestSession(honest, 'honest-2', 64);
  });
});

describe('per-peer counts', () => {
  it('sessions per peer: the 5th is QUOTA_EXCEEDED, another peer still opens', async () => {
    const t = await server({ maxSessionsPerPeer: 4 });
    const hog = await openBlockStream(t.client, t.server.peerId);
    for (let i = 0; i < 4; i++) expect(errorOf(await open(hog, `s${i}`, 8)).type).toBe('opened');
    expect(errorOf(await open(hog, 's4', 8))).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED', message: expect.stringMatching(/at most 4 sessions per peer/) });
    const other = await openBlockStream(t.client, t.server.peerId); // another stream does not help
    expect(errorOf(await open(other, 'x', 8))).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED' });
    await honestSession(await openBlockStream(await peer(t), t.server.peerId), 'honest');
  });

  it('streams per peer: a stream over the quota gets QUOTA_EXCEEDED for its first request, another peer is served', async () => {
    const t = await server({ maxStreamsPerPeer: 3 });
    const streams = await Promise.all([0, 1, 2].map(() => openBlockStream(t.client, t.server.peerId)));
    for (const c of streams) expect((await c.request({ type: 'ping', nonce: 1 })).header.type).toBe('pong');
    const extra = await openBlockStream(t.client, t.server.peerId);
    expect(errorOf(await open(extra, 'x', 8))).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED', sessionId: 'x' });
    await honestSession(await openBlockStream(await peer(t), t.server.peerId), 'honest');
    // closing one of its streams gives the peer its slot back
    await streams[0]!.close();
    await eventually(async () => t.server.service.activeStreams === 3, 5000, 20);
    await honestSession(await openBlockStream(t.client, t.server.peerId), 'again');
  });

  it('bytes in flight: a request over the peer quota is refused before it is decoded or queued', async () => {
    const t = await server({ maxPeerBytesInFlight: 8 * 1024 });
    const hog = await openBlockStream(t.client, t.server.peerId);
    expect(errorOf(await open(hog, 'big', 64)).type).toBe('opened');
    const reply = await step(hog, 'big', 0, 0, randomHidden(40, H, 4)); // 40 × 64 × 4 = 10 KiB
    expect(errorOf(reply)).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED', sessionId: 'big', message: expect.stringMatching(/bytes in flight/) });
    expect((await step(hog, 'big', 1, 0, randomHidden(4, H, 4))).header.type).toBe('stepResult');
    await honestSession(await openBlockStream(await peer(t), t.server.peerId), 'honest');
  });
});

describe('sizes checked from the header', () => {
  it('a step for an unknown session or of the wrong width is refused without decoding its tensor', async () => {
    const t = await server();
    const c = await openBlockStream(t.client, t.server.peerId);
    const receive = () => c.channel.receive({ signal: AbortSignal.timeout(10_000) });
    sendLengthPrefixed(c.stream, poisonedStep('ghost', H));
    expect(errorOf(await receive())).toMatchObject({ type: 'error', code: 'UNKNOWN_SESSION', sessionId: 'ghost' });
    expect(errorOf(await open(c, 'real', 8)).type).toBe('opened');
    sendLengthPrefixed(c.stream, poisonedStep('real', 2 * H));
    expect(errorOf(await receive())).toMatchObject({ type: 'error', code: 'INVALID_STEP', message: expect.stringMatching(/128 wide/) });
    // the same poison for a real session of the right width is a malformed tensor
    sendLengthPrefixed(c.stream, poisonedStep('real', H));
    expect(errorOf(await receive())).toMatchObject({ type: 'error', code: 'MALFORMED' });
    await honestSession(c, 'honest');
  });

  it('the frame limit is hiddenSize × the step cap × 4 bytes + header, not 64 MiB; steps over the cap are refused', async () => {
    const t = await server({ maxCacheTokens: 8192 });
    const limit = 6 + MAX_HEADER_BYTES + H * MAX_STEP_TOKENS * 4;
    expect(t.server.service.maxFrameBytes).toBe(limit);
    const c = await openBlockStream(t.client, t.server.peerId, { maxFrameBytes: 4 * limit });
    // a session as long as the model's context, and one token over the server's step cap (int8, so the frame
    // itself is small): refused from the header
    expect(errorOf(await open(c, 'long', 2048, 'int8')).type).toBe('opened');
    const over = await step(c, 'long', 0, 0, randomHidden(DEFAULT_MAX_STEP_TOKENS + 1, H, 5), 'int8');
    expect(errorOf(over)).toMatchObject({ type: 'error' });
    expect(['REQUEST_TOO_LARGE', 'MALFORMED']).toContain(errorOf(over).code);
    // a frame over the derived limit (well under 64 MiB) is FRAME_TOO_LARGE, and that stream is closed
    const huge = new Uint8Array(limit + 4);
    new DataView(huge.buffer).setUint32(0, huge.length - 4);
    sendLengthPrefixed(c.stream, huge);
    const refused = await c.channel.receive({ signal: AbortSignal.timeout(10_000) });
    expect(errorOf(refused)).toMatchObject({ type: 'error', code: 'FRAME_TOO_LARGE' });
    await honestSession(await openBlockStream(t.client, t.server.peerId), 'honest');
  });
});

describe('lifetimes', () => {
  it('a session that only dribbles (a step every so often, holding its cache) is closed; a working one is not', async () => {
    const t = await server({ idleTimeoutMs: 5000, slowSessionGraceMs: 400, minSessionRate: 20 });
    const dribbler = await openBlockStream(t.client, t.server.peerId);
    expect(errorOf(await open(dribbler, 'slow', 512)).type).toBe('opened');
    const honest = await openBlockStream(await peer(t), t.server.peerId);
    expect(errorOf(await open(honest, 'fast', 256)).type).toBe('opened');
    expect((await step(honest, 'fast', 0, 0, randomHidden(32, H, 1))).header.type).toBe('stepResult');
    let reply: DecodedMessage | undefined;
    for (let i = 0; i < 20; i++) {
      await sleep(150);
      reply = await step(dribbler, 'slow', i, i, randomHidden(1, H, i)); // ~6.7 tokens/s, under 20
      if (reply.header.type === 'error') break;
      expect((await step(honest, 'fast', i + 1, 32 + i, randomHidden(1, H, i))).header.type).toBe('stepResult');
    }
    expect(errorOf(reply!)).toMatchObject({ type: 'error', code: 'SESSION_EXPIRED', message: expect.stringMatching(/too slow/) });
    expect(t.server.service.activeSessions).toBe(1);
  });

  it('a stream that only pings (no work) is closed after the idle timeout; one that works stays', async () => {
    const t = await server({ idleTimeoutMs: 500 });
    const pinger = await openBlockStream(t.client, t.server.peerId);
    const worker = await openBlockStream(await peer(t), t.server.peerId);
    expect(errorOf(await open(worker, 'w', 64)).type).toBe('opened');
    let closed = false;
    for (let i = 0; i < 12 && !closed; i++) {
      await sleep(150);
      closed = await pinger.request({ type: 'ping', nonce: i }).then(() => false, () => true);
      expect((await step(worker, 'w', i, i, randomHidden(1, H, i))).header.type).toBe('stepResult');
    }
    expect(closed).toBe(true);
    expect(t.server.service.activeStreams).toBe(1);
  });
});

describe('reply codec', () => {
  it('a step sent as int8 is answered in int8 even when the session was opened as f32', async () => {
    const t = await server();
    const c = await openBlockStream(t.client, t.server.peerId);
    expect(errorOf(await open(c, 'amp', 8, 'f32')).type).toBe('opened');
    const reply = await step(c, 'amp', 0, 0, randomHidden(2, H, 3), 'int8');
    expect(reply.header).toMatchObject({ type: 'stepResult', tensor: { dtype: 'int8', shape: [2, H] } });
    // f32 steps of an f32 session are answered in f32
    expect((await step(c, 'amp', 1, 2, randomHidden(1, H, 4))).header).toMatchObject({ tensor: { dtype: 'f32' } });
  });
});

describe('many sessions from one client', () => {
  it('100 concurrent sessions from one client node through one server all work (no outbound-stream limit hit)', async () => {
    const t = await server({ maxCacheTokens: 4096 });
    const spans = await Promise.all(
      Array.from({ length: 100 }, (_, i) => openRemoteSpan(t.client.libp2p, { peerId: t.server.peerId }, { sessionId: `g${i}`, maxLength: 8, start: 0, end: 5, hiddenSize: H })),
    );
    expect(t.server.service.activeSessions).toBe(100);
    const outs = await Promise.all(spans.map((span) => span.step({ position: 0, tokens: 1, hidden: randomHidden(1, H, 42) })));
    for (const out of outs) expect(out).toEqual(outs[0]);
    await Promise.all(spans.map((span) => span.close()));
    await eventually(async () => t.server.service.activeSessions === 0, 5000, 20);
  });
});
