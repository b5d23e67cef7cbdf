/**
 * DHT servers under a rogue peer that floods puts: quotas per record owner (how many records, how often), records
 * dropped once expired instead of served, replays that cannot roll a record back. Honest records keep working.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import type { QueryEvent } from '@libp2p/kad-dht';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { createRegistry, type Registry } from '../../src/swarm/registry/index.js';
import { createSignedServerRecord, encodeEnvelope } from '../../src/swarm/records/index.js';
import { serverRecordKey } from '../../src/swarm/dht/keys.js';
import { DHT_STORE_DEFAULTS } from '../../src/swarm/defaults.js';
import { DhtRecordStore } from '../../src/swarm/dht/store.js';
import { Libp2pRecord } from '@libp2p/record';
import { Key } from 'interface-datastore';
import { base32 } from 'multiformats/bases/base32';
import { FAST, serverInput, startSwarm } from '../support/swarm.js';

const MODEL = 'org/honest-model';

let boot: SwarmNode;
let honest: SwarmNode[];
let rogue: SwarmNode;
let server: Registry;
let reader: Registry;

/** Puts `value` under `key` from `node`; returns the peers that confirmed storing it. */
async function put(node: SwarmNode, key: Uint8Array, value: Uint8Array): Promise<Set<string>> {
  const confirmed = new Set<string>();
  try {
    for await (const event of node.libp2p.services.dht.put(key, value, { signal: AbortSignal.timeout(5000) }) as AsyncIterable<QueryEvent>) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') confirmed.add(event.from.toString());
    }
  } catch {
    // refusals end the put early; what was confirmed is what counts
  }
  return confirmed;
}

async function rogueRecord(modelId: string, ttlMs = 60_000): Promise<Uint8Array> {
  return encodeEnvelope(await createSignedServerRecord(rogue.privateKey, { ...serverInput(modelId, 0, 4, 4), addrs: [] }, { ttlMs }));
}

beforeAll(async () => {
  ({ boot, nodes: honest } = await startSwarm(3));
  // the rogue's own store takes anything, so its puts reach the network whatever our limits say
  rogue = await createSwarmNode({ transport: 'memory', bootstrap: [boot.multiaddrs[0]!], dht: { store: { maxRecordsPerPeer: 1e6, putsPerPeerPerMinute: 1e9, putBurst: 1e9 } } });
  await rogue.waitForPeers(4, 15_000);
  server = await createRegistry(honest[0]!, FAST);
  reader = await createRegistry(honest[2]!, FAST);
  await server.announce(serverInput(MODEL, 0, 4, 4));
});

afterAll(async () => {
  await Promise.all([server, reader].map((registry) => registry.close()));
  await Promise.all([boot, ...honest, rogue].map((node) => node.stop()));
});

describe('DHT record store quotas', () => {
  it('a peer cannot store more than maxRecordsPerPeer records on a DHT server', async () => {
    const storedKeys = new Map<string, number>();
    for (let i = 0; i < 3 * DHT_STORE_DEFAULTS.maxRecordsPerPeer; i++) {
      const confirmed = await put(rogue, serverRecordKey(`rogue/model-${i}`, rogue.peerId), await rogueRecord(`rogue/model-${i}`));
      for (const peer of confirmed) storedKeys.set(peer, (storedKeys.get(peer) ?? 0) + 1);
    }
    for (const node of [boot, ...honest]) {
      expect(storedKeys.get(node.peerId) ?? 0).toBeLessThanOrEqual(DHT_STORE_DEFAULTS.maxRecordsPerPeer);
      expect(node.dhtStore.usageOf(rogue.peerId).records).toBeLessThanOrEqual(DHT_STORE_DEFAULTS.maxRecordsPerPeer);
    }
    // honest records still get stored and found
    await server.update({ throughput: { compute: 99, network: 1000 } });
    const records = await reader.lookup(MODEL);
    expect(records.map((r) => r.record.peerId)).toEqual([honest[0]!.peerId]);
  });

  it('a peer cannot rewrite its records faster than putsPerPeerPerMinute (after a burst)', async () => {
    const key = serverRecordKey('rogue/model-0', rogue.peerId);
    const accepted = new Map<string, number>();
    const started = Date.now();
    for (let i = 0; i < 3 * DHT_STORE_DEFAULTS.putBurst; i++) {
      for (const peer of await put(rogue, key, await rogueRecord('rogue/model-0'))) accepted.set(peer, (accepted.get(peer) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, 2)); // distinct issuedAt
    }
    const minutes = (Date.now() - started) / 60_000;
    const allowed = DHT_STORE_DEFAULTS.putBurst + Math.ceil(minutes * DHT_STORE_DEFAULTS.putsPerPeerPerMinute) + 1;
    for (const node of [boot, ...honest]) expect(accepted.get(node.peerId) ?? 0).toBeLessThanOrEqual(allowed);
  });
});

describe('DHT record expiry', () => {
  it('a record past its expiresAt is dropped by DHT servers, not served', async () => {
    // a reader whose own DHT layer accepts anything: it sees exactly what the storing peers serve
    const permissive = { corolla: async () => {}, 'corolla-peer': async () => {} };
    const lax = await createSwarmNode({ transport: 'memory', bootstrap: [boot.multiaddrs[0]!], dht: { validators: permissive, selectors: { corolla: () => 0, 'corolla-peer': () => 0 } } });
    const writer = await createSwarmNode({ transport: 'memory', bootstrap: [boot.multiaddrs[0]!] });
    try {
      await Promise.all([lax.waitForPeers(4, 15_000), writer.waitForPeers(4, 15_000)]);
      const key = serverRecordKey('rogue/short-lived', writer.peerId);
      const value = encodeEnvelope(await createSignedServerRecord(writer.privateKey, { ...serverInput('rogue/short-lived', 0, 4, 4), addrs: [] }, { ttlMs: 1500 }));
      const stored = await put(writer, key, value);
      expect([...stored].filter((peer) => peer !== lax.peerId).length).toBeGreaterThan(0);
      await writer.stop(); // only the DHT servers hold it now
      expect(await servedTo(lax, key)).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, 1600));
      expect(await servedTo(lax, key)).toBe(0);
    } finally {
      await Promise.all([lax.stop(), writer.stop()]);
    }
  });

  it('the store drops expired records, ignores replays of older records, and refuses expired writes', async () => {
    let now = Date.now();
    const store = new DhtRecordStore({}, { now: () => now });
    const key = serverRecordKey('m', rogue.peerId);
    const record = async (issuedAt: number, ttlMs: number) =>
      new Libp2pRecord(key, encodeEnvelope(await createSignedServerRecord(rogue.privateKey, { ...serverInput('m', 0, 4, 4), addrs: [] }, { now: issuedAt, ttlMs })), new Date()).serialize();
    const dsKey = new Key(`/dht/record/${base32.baseEncode(key)}`);
    const newer = await record(now, 10_000);
    store.put(dsKey, newer);
    store.put(dsKey, await record(now - 5_000, 10_000)); // an older replay is ignored
    expect(store.get(dsKey)).toEqual(newer);
    now += 10_001;
    expect(() => store.get(dsKey)).toThrow(/expired/);
    expect(store.recordCount).toBe(0);
    expect(() => store.put(dsKey, newer)).toThrow(/expired/);
  });
});

/** How many values for `key` the other peers serve to `reader` (its own local copy aside). */
async function servedTo(reader: SwarmNode, key: Uint8Array): Promise<number> {
  let values = 0;
  try {
    for await (const event of reader.libp2p.services.dht.get(key, { signal: AbortSignal.timeout(5000) }) as AsyncIterable<QueryEvent>) {
      if (event.name === 'PEER_RESPONSE' && event.record) values++;
    }
  } catch {
    // NotFound ends the walk
  }
  return values;
}
