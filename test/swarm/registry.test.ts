/**
 * The announce/lookup layer on a real in-memory libp2p swarm: a bootstrap node (also a DHT-only reader), three
 * servers and a client. Adversarial cases live in registry-adversarial.test.ts.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import type { SwarmNode } from '../../src/swarm/node.js';
import { createRegistry, type Registry } from '../../src/swarm/registry/index.js';
import { InvalidRecordError, PeerRequestError } from '../../src/swarm/errors.js';
import { ANNOUNCE_PROTOCOL, HEARTBEAT_PROTOCOL } from '../../src/wire/protocols.js';
import { FAST, serverInput, startSwarm } from '../support/swarm.js';
import { eventually } from '../support/wait.js';

const MODEL_A = 'org/model-a';
const MODEL_B = 'org/model-b';

let boot: SwarmNode;
let nodes: SwarmNode[];
let registries: Registry[];
let s1: Registry, s2: Registry, s3: Registry, client: Registry;
/** A reader that never asks peers directly: proves the records are in the DHT. */
let dhtOnly: Registry;

beforeAll(async () => {
  ({ boot, nodes } = await startSwarm(4));
  registries = await Promise.all(nodes.map((node) => createRegistry(node, FAST)));
  [s1, s2, s3, client] = registries as [Registry, Registry, Registry, Registry];
  dhtOnly = await createRegistry(boot, { ...FAST, direct: 'never' });
  registries.push(dhtOnly);
  const results = await Promise.all([
    s1.announce(serverInput(MODEL_A, 0, 16, 30, { publicName: 'one', ethAddress: '0x' + '11'.repeat(20) })),
    s2.announce(serverInput(MODEL_A, 12, 30, 30)),
    s3.announce(serverInput(MODEL_B, 0, 6, 12)),
  ]);
  for (const result of results) expect(result.replicas).toBeGreaterThan(0);
});

afterAll(async () => {
  await Promise.all(registries.map((registry) => registry.close()));
  await Promise.all([boot, ...nodes].map((node) => node.stop()));
});

describe('registry over a 5-node memory swarm', () => {
  it('a client finds every server of a model with verified records (asking peers, or from the DHT alone)', async () => {
    const fromDht = await dhtOnly.lookupDetailed(MODEL_A);
    expect(fromDht.rejected).toEqual([]);
    expect(fromDht.records.map((r) => r.record.peerId)).toEqual([nodes[0]!.peerId, nodes[1]!.peerId]);
    const result = await client.lookupDetailed(MODEL_A);
    expect(result.rejected).toEqual([]);
    expect(result.records.map((r) => [r.record.peerId, r.record.span])).toEqual([
      [nodes[0]!.peerId, { start: 0, end: 16 }],
      [nodes[1]!.peerId, { start: 12, end: 30 }],
    ]);
    const one = result.records[0]!.record;
    expect(one).toMatchObject({ modelId: MODEL_A, state: 'online', publicName: 'one', numBlocks: 30, dtype: 'f32', quantization: 'q8_0' });
    expect(one.addrs).toEqual(nodes[0]!.multiaddrs);
    // servers see each other too (and themselves)
    expect((await s2.lookup(MODEL_A)).map((r) => r.record.peerId).sort()).toEqual([nodes[0]!.peerId, nodes[1]!.peerId].sort());
    expect(await client.lookup('org/nobody-serves-this')).toEqual([]);
    // a numBlocks expectation filters disagreeing records out, with reasons
    const wrong = await client.lookupDetailed(MODEL_A, { numBlocks: 31 });
    expect(wrong.records).toEqual([]);
    expect(wrong.rejected.some((r) => /numBlocks 30, expected 31/.test(r.reason))).toBe(true);
  });

  it('listModels aggregates models and their block coverage', async () => {
    const models = await client.listModels();
    expect(models.map((m) => m.modelId)).toEqual([MODEL_A, MODEL_B]);
    const [a, b] = models as [(typeof models)[0], (typeof models)[0]];
    expect(a).toMatchObject({ numBlocks: 30, servers: 2, coveredBlocks: 30, complete: true });
    expect(a.blocks[0]).toEqual({ servers: 1, throughput: 40 });
    expect(a.blocks[13]).toEqual({ servers: 2, throughput: 40 + 52 });
    expect(a.blocks[29]).toEqual({ servers: 1, throughput: 52 });
    expect(a.minThroughput).toBe(40);
    expect(b).toMatchObject({ numBlocks: 12, servers: 1, coveredBlocks: 6, complete: false, minThroughput: 0 });
  });

  it('heartbeat returns signed live load at once; the DHT record follows within minRepublishMs', async () => {
    const before = await client.heartbeat(nodes[1]!.peerId);
    expect(before.record).toMatchObject({ peerId: nodes[1]!.peerId, modelId: MODEL_A, load: { activeSessions: 0, queuedSteps: 0 }, cacheTokensLeft: 8192 });
    s2.updateLoad({ activeSessions: 3, queuedSteps: 7, cacheTokensLeft: 500 });
    const after = await client.heartbeat(nodes[1]!.peerId, { modelId: MODEL_A });
    expect(after.record).toMatchObject({ load: { activeSessions: 3, queuedSteps: 7 }, cacheTokensLeft: 500 });
    expect(after.record.nonce).not.toBe(before.record.nonce);
    const record = await eventually(async () => {
      const found = (await client.lookup(MODEL_A)).find((r) => r.record.peerId === nodes[1]!.peerId);
      return found?.record.load.activeSessions === 3 ? found : undefined;
    }, 8_000);
    expect(record.record.cacheTokensLeft).toBe(500);
    // asking a peer that serves a different model, or serves nothing, is a typed error
    await expect(client.heartbeat(nodes[2]!.peerId, { modelId: MODEL_A })).rejects.toThrow(/NOT_SERVING: not serving model org\/model-a/);
    await expect(s1.heartbeat(nodes[3]!.peerId)).rejects.toBeInstanceOf(PeerRequestError);
  });

  it('only a node that announces serves the control protocols', async () => {
    const served = (node: SwarmNode) => node.libp2p.getProtocols().filter((protocol) => protocol === ANNOUNCE_PROTOCOL || protocol === HEARTBEAT_PROTOCOL);
    // the client's registry only reads: it looked up, listed and asked for heartbeats above, and registered nothing
    expect(served(nodes[3]!)).toEqual([]);
    expect(served(nodes[0]!).sort()).toEqual([ANNOUNCE_PROTOCOL, HEARTBEAT_PROTOCOL].sort());
    // a fresh read-only registry on a node with none registers nothing either, and closing it unregisters nothing
    const reader = await createRegistry(nodes[3]!, FAST);
    expect((await reader.lookup(MODEL_A)).length).toBe(2);
    await reader.close();
    expect(served(nodes[3]!)).toEqual([]);
    expect(served(nodes[0]!)).toHaveLength(2);
  });

  it('updates replace the old record for that peer, in the DHT and in direct answers', async () => {
    // an invalid update is refused and changes nothing
    await expect(s1.update({ span: { start: 20, end: 31 } })).rejects.toBeInstanceOf(InvalidRecordError);
    expect(() => s1.updateLoad({ activeSessions: -1 })).toThrow(InvalidRecordError);
    expect(s1.current()!.record.span).toEqual({ start: 0, end: 16 });
    await s1.update({ span: { start: 0, end: 14 }, throughput: { compute: 35, network: 900 } });
    for (const reader of [client, dhtOnly]) {
      const mine = (await reader.lookup(MODEL_A)).filter((r) => r.record.peerId === nodes[0]!.peerId);
      expect(mine).toHaveLength(1);
      expect(mine[0]!.record.span).toEqual({ start: 0, end: 14 });
      expect(mine[0]!.record.throughput).toEqual({ compute: 35, network: 900, effective: 35 });
    }
  });

  it('withdraw publishes offline; coverage drops it', async () => {
    await s3.withdraw();
    for (const reader of [client, dhtOnly]) expect((await reader.lookup(MODEL_B)).map((r) => r.record.state)).toEqual(['offline']);
    const b = (await client.listModels()).find((m) => m.modelId === MODEL_B)!;
    expect(b).toMatchObject({ servers: 0, coveredBlocks: 0, complete: false });
    expect((await client.heartbeat(nodes[2]!.peerId)).record.state).toBe('offline');
  });
});
