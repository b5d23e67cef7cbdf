/**
 * Sessions over direct lanes (swarm/lanes.ts) on loopback TCP: client-to-server steps and server-to-server pushes
 * leave libp2p, outputs are byte-identical to libp2p streams, and a server dying mid-chain fails over exactly as
 * before, onto a lane again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteModel } from '../../src/client/remote-model.js';
import { SwarmInferenceSession } from '../../src/client/inference-session.js';
import { loadEmbeddings, type EmbeddingTable } from '../../src/engine/embeddings.js';
import { loadLmHead } from '../../src/engine/lm-head.js';
import type { LmHead } from '../../src/engine/types.js';
import { argmax } from '../../src/inference/sampling/index.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import type { SwarmNode } from '../../src/swarm/node.js';
import { BLOCK_PROTOCOL } from '../../src/wire/protocols.js';
import { STORIES_GGUF } from '../support/models.js';
import { FAST, startTestSwarm, type TestSwarm } from '../support/swarm.js';

const PROMPT = [1, 403, 407, 261, 378];
const STEPS = 12;
let source: LoadedModelSource;
let embeddings: EmbeddingTable;
let lmHead: LmHead;
let swarm: TestSwarm;
let clientNode: SwarmNode;
let model: RemoteModel;

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  embeddings = loadEmbeddings(source);
  lmHead = await loadLmHead(source);
  // a chain of three, plus a spare for the middle span
  swarm = await startTestSwarm(source, [{ start: 0, end: 2 }, { start: 2, end: 4 }, { start: 4, end: 5 }, { start: 2, end: 4 }], undefined, undefined, 'tcp');
  clientNode = await swarm.client();
  model = await RemoteModel.open({ model: STORIES_GGUF, modelId: swarm.modelId, registryOptions: FAST, coverageTimeoutMs: 20_000, stepTimeoutMs: 5_000 }, { node: clientNode });
}, 120_000);

afterAll(async () => {
  await model?.close();
  await swarm?.stop();
  source?.close();
});

/** A session on libp2p streams only: no lanes given, no forwarding. */
const onStreams = () =>
  SwarmInferenceSession.open({ node: clientNode.libp2p, source: model.directory, numBlocks: source.config.numLayers, hiddenSize: source.config.hiddenSize, maxLength: 64, stepTimeoutMs: 5_000, forwarding: false });

/** Block-protocol streams open on the servers' libp2p connections. */
const blockStreams = () =>
  swarm.servers.filter((s) => !s.dead).flatMap((s) => s.node.libp2p.getConnections().flatMap((c) => c.streams)).filter((stream) => stream.protocol === BLOCK_PROTOCOL).length;

async function decode(session: SwarmInferenceSession, before: (step: number) => Promise<void> = async () => {}): Promise<Float32Array[]> {
  const outputs: Float32Array[] = [];
  let ids = PROMPT;
  for (let i = 0; i < STEPS; i++) {
    await before(i);
    const out = await session.step(embeddings.embed(ids), ids.length, { sampled: i > 0 });
    outputs.push(out);
    const H = source.config.hiddenSize;
    ids = [argmax(await lmHead.logits(out.subarray(out.length - H)))];
  }
  return outputs;
}

describe('direct lanes', () => {
  it('carry client steps and server-to-server pushes, with the bytes of libp2p streams', async () => {
    const plain = await onStreams();
    const expected = await decode(plain);
    expect(plain.route.map((hop) => hop.transport)).toEqual(plain.route.map(() => 'libp2p'));
    expect(blockStreams()).toBe(plain.route.length);
    await plain.close();

    const session = await model.openSwarmSession(64);
    expect(session.route.length).toBe(3);
    expect(session.route.map((hop) => hop.transport)).toEqual(['lane', 'lane', 'lane']);
    expect(await decode(session)).toEqual(expected);
    expect(session.stats.chainedSteps).toBe(STEPS);
    expect(session.stats.brokenChains).toBe(0);
    expect(session.stats.lastStep.map((hop) => hop.pushed)).toEqual([false, true, true]);
    // neither the client's steps nor the servers' pushes went over a libp2p block stream
    await new Promise((resolve) => setTimeout(resolve, 100)); // the plain session's streams finish closing
    expect(blockStreams()).toBe(0);
    await session.close();
  }, 120_000);

  it('a server dying mid-chain: the lane resets, the session fails over onto a lane, outputs unchanged', async () => {
    const plain = await onStreams();
    const expected = await decode(plain);
    await plain.close();

    const session = await model.openSwarmSession(64);
    const middle = session.route.find((hop) => hop.start === 2)!;
    const outputs = await decode(session, async (i) => {
      if (i === 6) await swarm.kill(middle.peerId);
    });
    expect(outputs).toEqual(expected);
    expect(session.stats.failovers).toBe(1);
    expect(session.route.map((hop) => hop.peerId)).not.toContain(middle.peerId);
    expect(session.stats.recoveries[0]!.replacements.map((hop) => hop.transport)).toEqual(['lane']);
    await session.close();
  }, 120_000);
});
