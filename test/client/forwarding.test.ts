/**
 * Server-to-server forwarding: a token costs one pass through the chain, outputs are byte-identical to hop-by-hop
 * steps, a chain broken by a dead server fails over exactly as before, and a server accepts pushed steps only from the
 * upstream the client named, validated as a client's step. On the memory transport and on TCP, where every hop and
 * every push travels on a direct lane.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteModel } from '../../src/client/remote-model.js';
import { SwarmInferenceSession } from '../../src/client/inference-session.js';
import { loadEmbeddings, type EmbeddingTable } from '../../src/engine/embeddings.js';
import { loadLmHead } from '../../src/engine/lm-head.js';
import type { LmHead } from '../../src/engine/types.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import type { SwarmNode, SwarmTransport } from '../../src/swarm/node.js';
import { BLOCK_PROTOCOL } from '../../src/wire/protocols.js';
import { openBlockStream } from '../support/servers.js';
import { STORIES_GGUF } from '../support/models.js';
import { FAST, decodeHidden, startTestSwarm, type TestSwarm } from '../support/swarm.js';

const PROMPT = [1, 403, 407, 261, 378];
const STEPS = 12;
let source: LoadedModelSource;
let embeddings: EmbeddingTable;
let lmHead: LmHead;

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  embeddings = loadEmbeddings(source);
  lmHead = await loadLmHead(source);
});

afterAll(() => source?.close());

/** Greedy decoding at the hidden-state level; every step's output bytes, and `before(i)` run ahead of step i. */
const decode = (session: SwarmInferenceSession, before?: (step: number) => Promise<void>) =>
  decodeHidden(session, { embeddings, lmHead, hiddenSize: source.config.hiddenSize }, PROMPT, STEPS, before);

/** A chain of three, plus a spare for the middle span, and a client. */
async function chain(transport: SwarmTransport): Promise<{ swarm: TestSwarm; clientNode: SwarmNode; model: RemoteModel }> {
  const swarm = await startTestSwarm(source, [{ start: 0, end: 2 }, { start: 2, end: 4 }, { start: 4, end: 5 }, { start: 2, end: 4 }], undefined, undefined, transport);
  const clientNode = await swarm.client();
  const model = await RemoteModel.open({ model: STORIES_GGUF, modelId: swarm.modelId, registryOptions: FAST, coverageTimeoutMs: 20_000, stepTimeoutMs: 5_000 }, { node: clientNode });
  return { swarm, clientNode, model };
}

// On TCP every hop is a direct lane (swarm/lanes.ts): client steps and server-to-server pushes leave libp2p.
describe.each(['memory', 'tcp'] as const)('forwarding (%s)', (transport) => {
  let swarm: TestSwarm;
  let clientNode: SwarmNode;
  let model: RemoteModel;
  const carrier = transport === 'tcp' ? 'lane' : 'libp2p';

  beforeAll(async () => {
    ({ swarm, clientNode, model } = await chain(transport));
  }, 120_000);

  afterAll(async () => {
    await model?.close();
    await swarm?.stop();
  });

  /** A session that steps hop by hop on libp2p streams (no forwarding, no lanes), over the same swarm view. */
  const hopByHop = () =>
    SwarmInferenceSession.open({ node: clientNode.libp2p, source: model.directory, numBlocks: source.config.numLayers, hiddenSize: source.config.hiddenSize, maxLength: 64, stepTimeoutMs: 5_000, forwarding: false });

  /** Block-protocol streams open on the live servers' libp2p connections. */
  const blockStreams = () =>
    swarm.servers.filter((s) => !s.dead).flatMap((s) => s.node.libp2p.getConnections().flatMap((c) => c.streams)).filter((stream) => stream.protocol === BLOCK_PROTOCOL).length;

  it('pushes each step through the chain and returns the same bytes as hop-by-hop steps', async () => {
    const plain = await hopByHop();
    const expected = await decode(plain);
    expect(plain.stats.chainedSteps).toBe(0);
    expect(plain.route.map((hop) => hop.transport)).toEqual(plain.route.map(() => 'libp2p'));
    expect(blockStreams()).toBe(plain.route.length);
    await plain.close();

    const forwarded = await model.openSwarmSession(64);
    const route = forwarded.route;
    expect(route.length).toBe(3);
    expect(route.map((hop) => hop.transport)).toEqual([carrier, carrier, carrier]);
    const outputs = await decode(forwarded);
    expect(outputs).toEqual(expected);
    expect(forwarded.stats.chainedSteps).toBe(STEPS);
    expect(forwarded.stats.brokenChains).toBe(0);
    // every hop after the first got the step from the one before it, and its server reported its time
    const last = forwarded.stats.lastStep;
    expect(last.map((hop) => hop.peerId)).toEqual(route.map((hop) => hop.peerId));
    expect(last.map((hop) => hop.pushed)).toEqual(route.map((_, i) => i > 0));
    for (const hop of last) expect(hop.computeMs).toBeGreaterThanOrEqual(0);
    if (transport === 'tcp') {
      // neither the client's steps nor the servers' pushes went over a libp2p block stream
      await new Promise((resolve) => setTimeout(resolve, 100)); // the plain session's streams finish closing
      expect(blockStreams()).toBe(0);
    }
    await forwarded.close();
  }, 120_000);

  it('a server dying inside a forwarded chain: the step fails over hop by hop, outputs unchanged', async () => {
    const plain = await hopByHop();
    const expected = await decode(plain);
    await plain.close();

    const session = await model.openSwarmSession(64);
    const middle = session.route.find((hop) => hop.start === 2)!;
    const outputs = await decode(session, async (i) => {
      if (i === 6) await swarm.kill(middle.peerId);
    });
    expect(outputs).toEqual(expected);
    expect(session.stats.failovers).toBe(1);
    expect(session.stats.brokenChains).toBeGreaterThanOrEqual(1);
    expect(session.route.map((hop) => hop.peerId)).not.toContain(middle.peerId);
    expect(session.stats.recoveries[0]!.replacements.map((hop) => hop.transport)).toEqual([carrier]);
    await session.close();
  }, 120_000);

  if (transport === 'memory') describe('push', () => pushTests(() => ({ swarm, clientNode })));
});

function pushTests(setup: () => { swarm: TestSwarm; clientNode: SwarmNode }): void {
  it('is accepted only from the named upstream, validated like a step, and answered on the client stream', async () => {
    const { swarm, clientNode } = setup();
    const live = swarm.servers.filter((s) => !s.dead);
    const upstream = live.find((s) => s.start === 0)!;
    const target = live.find((s) => s.start === 4)!;
    const stranger = live.find((s) => s.start === 2)!;
    const H = source.config.hiddenSize;
    const client = await openBlockStream(clientNode, target.server.peerId.toString());
    const opened = await client.request({ type: 'open', sessionId: 'fwd', maxLength: 16, spanStart: 4, spanEnd: 5, codec: 'f32', upstream: upstream.server.peerId.toString() });
    expect(opened.header).toMatchObject({ type: 'opened', forwarding: true });
    const push = { type: 'push' as const, client: clientNode.peerId.toString(), sessionId: 'fwd', stepId: 0, position: 0, tokens: 1 };
    const hidden = { data: new Float32Array(H).fill(0.25), shape: [1, H], dtype: 'f32' as const };

    const fromStranger = await openBlockStream(stranger.node, target.server.peerId.toString());
    expect((await fromStranger.request(push, hidden)).header).toMatchObject({ type: 'error', code: 'FORWARD_REFUSED' });
    await fromStranger.close();

    const fromUpstream = await openBlockStream(upstream.node, target.server.peerId.toString());
    // the same checks as a client's step: another client's id, a wrong width, past maxLength
    expect((await fromUpstream.request({ ...push, client: upstream.server.peerId.toString() }, hidden)).header).toMatchObject({ code: 'FORWARD_REFUSED' });
    expect((await fromUpstream.request(push, { data: new Float32Array(H + 1), shape: [1, H + 1], dtype: 'f32' })).header).toMatchObject({ code: 'INVALID_STEP' });
    expect((await fromUpstream.request({ ...push, position: 16 }, hidden)).header).toMatchObject({ code: 'INVALID_STEP' });
    expect((await fromUpstream.request(push, hidden)).header).toEqual({ type: 'pushed', sessionId: 'fwd', stepId: 0 });
    const result = await client.channel.receive({ signal: AbortSignal.timeout(20_000) });
    expect(result.header).toMatchObject({ type: 'stepResult', sessionId: 'fwd', stepId: 0, position: 0 });
    expect(result.tensor).toHaveLength(H);
    await fromUpstream.close();
    await client.close();
  }, 60_000);
}
