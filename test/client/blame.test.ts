/**
 * Blame on the right server: the client's own encoding errors ban nobody, an implausible magnitude is charged to the
 * hop that produced it (not to the next one), and f16 on the wire saturates instead of making infinities.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BanList } from '../../src/client/bans.js';
import { LocalEncodingError, RemoteSpanError } from '../../src/client/errors.js';
import { SwarmInferenceSession, type RouteSource } from '../../src/client/inference-session.js';
import { openRemoteSpan } from '../../src/client/remote-span.js';
import type { PlannerRecord } from '../../src/client/route-planner.js';
import { loadEmbeddings, type EmbeddingTable } from '../../src/engine/embeddings.js';
import { loadLmHead } from '../../src/engine/lm-head.js';
import type { LmHead } from '../../src/engine/types.js';
import { argmax } from '../../src/inference/sampling/index.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import type { SwarmNode } from '../../src/swarm/node.js';
import { decodeTensor, encodeTensor } from '../../src/wire/tensor-codec.js';
import { startFakeSwarm, type FakeServer, type FakeSwarm } from '../support/fake-server.js';
import { STORIES_GGUF } from '../support/models.js';
import { localReference } from '../support/reference.js';

const STEPS = 8;
let source: LoadedModelSource;
let reference: Awaited<ReturnType<typeof localReference>>;
let embeddings: EmbeddingTable;
let lmHead: LmHead;
let swarm: FakeSwarm;
let client: SwarmNode;
let first: FakeServer;
let flaky: FakeServer;
let backup: FakeServer;
let last: FakeServer;
let records: PlannerRecord[];

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  reference = await localReference(source, 'Once upon a time', STEPS);
  embeddings = loadEmbeddings(source);
  lmHead = await loadLmHead(source);
  const layout: [number, number, number][] = [[0, 2, 100], [2, 4, 500], [2, 4, 100], [4, 5, 100]];
  swarm = await startFakeSwarm(source, layout.map(([start, end, compute]) => ({ start, end, compute })));
  const { servers } = swarm;
  [first, flaky, backup, last] = servers as [FakeServer, FakeServer, FakeServer, FakeServer];
  records = swarm.records;
  client = swarm.client;
});

afterAll(async () => {
  await swarm?.stop();
  source?.close();
});

const everyone: RouteSource = { records: async () => records };

describe('blame', () => {
  it('an implausibly large (finite) output is charged to the hop that produced it, not to the next one', async () => {
    flaky.fault = { kind: 'huge', atStep: 3 };
    const bans = new BanList();
    const session = await SwarmInferenceSession.open({ node: client.libp2p, source: everyone, numBlocks: 5, hiddenSize: source.config.hiddenSize, maxLength: 64, bans });
    expect(session.route.map((hop) => hop.peerId)).toEqual([first.peerId, flaky.peerId, last.peerId]);
    let ids = reference.ids;
    const tokens: number[] = [];
    for (let i = 0; i < STEPS; i++) {
      tokens.push(argmax(await lmHead.logits(await session.step(embeddings.embed(ids), ids.length))));
      ids = [tokens.at(-1)!];
    }
    expect(tokens).toEqual(reference.tokens);
    expect(session.stats.banned).toEqual([flaky.peerId]);
    expect(bans.isBanned(last.peerId)).toBe(false);
    expect(session.route.map((hop) => hop.peerId)).toEqual([first.peerId, backup.peerId, last.peerId]);
    await session.close();
    flaky.fault = undefined;
  });

  it('a non-finite value in our own input is our error: nobody is banned and the session goes on', async () => {
    const bans = new BanList();
    const session = await SwarmInferenceSession.open({ node: client.libp2p, source: everyone, numBlocks: 5, hiddenSize: source.config.hiddenSize, maxLength: 64, bans });
    const bad = embeddings.embed(reference.ids);
    bad[5] = Number.NaN;
    const error = await session.step(bad, reference.ids.length).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalEncodingError);
    expect((error as LocalEncodingError).code).toBe('TENSOR_NON_FINITE');
    expect(session.stats.failures).toBe(0);
    expect(session.stats.banned).toEqual([]);
    // the step did not happen: the same position works with a good tensor, output as local
    const logits = await lmHead.logits(await session.step(embeddings.embed(reference.ids), reference.ids.length));
    expect(logits).toEqual(reference.logits[0]);
    await session.close();
  });

  it('a frame over our own limit is our error: the hop is not failed and stays usable', async () => {
    const H = source.config.hiddenSize;
    const span = await openRemoteSpan(client.libp2p, { peerId: first.peerId, addrs: swarm.nodes[0]!.multiaddrs }, { maxLength: 64, start: 0, end: 2, hiddenSize: H }, { maxFrameBytes: 4 * H * 4 + 512 });
    const error = await span.step({ position: 0, tokens: 8, hidden: new Float32Array(8 * H).fill(0.1) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalEncodingError);
    expect(error).not.toBeInstanceOf(RemoteSpanError);
    expect((error as LocalEncodingError).code).toBe('FRAME_TOO_LARGE');
    expect(span.usable).toBe(true);
    const out = await span.step({ position: 0, tokens: 2, hidden: new Float32Array(2 * H).fill(0.1) });
    expect(out.length).toBe(2 * H);
    await span.close();
  });
});

describe('f16 on the wire', () => {
  it('saturates finite values beyond ±65504 instead of sending infinities', () => {
    const data = Float32Array.from([65520, 1e5, -3e38, 65504, -70000, 1]);
    const back = decodeTensor(encodeTensor(data, [6], 'f16'), [6], 'f16');
    expect([...back]).toEqual([65504, 65504, -65504, 65504, -65504, 1]);
  });
});
