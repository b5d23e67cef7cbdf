/**
 * Adversarial and failure cases for the registry on an in-memory swarm: forged, tampered, malformed and expired
 * records must be ignored with reasons and never crash a reader; junk on the control protocols only kills its stream;
 * a lone first server's record reaches peers that join later.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { lpStream } from '@libp2p/utils';
import { publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { createRegistry, type Registry } from '../../src/swarm/registry/index.js';
import { ANNOUNCE_PROTOCOL, HEARTBEAT_PROTOCOL } from '../../src/wire/protocols.js';
import { createSignedServerRecord, encodeEnvelope, signingBytes, verifyServerRecord, type ServerRecord } from '../../src/swarm/records/index.js';
import { indexProviderCid, modelProviderCid, providerShard, serverRecordKey, peerRecordKey } from '../../src/swarm/dht/keys.js';
import { SwarmConfigError } from '../../src/swarm/errors.js';
import { FAST, serverInput, startSwarm } from '../support/swarm.js';
import { eventually } from '../support/wait.js';

const MODEL_A = 'org/model-a';

let boot: SwarmNode;
let nodes: SwarmNode[];
let registries: Registry[];
let s1: Registry, s2: Registry, client: Registry;

beforeAll(async () => {
  ({ boot, nodes } = await startSwarm(3));
  registries = await Promise.all(nodes.map((node) => createRegistry(node, FAST)));
  [s1, s2, client] = registries as [Registry, Registry, Registry];
  await Promise.all([s1.announce(serverInput(MODEL_A, 0, 16, 30)), s2.announce(serverInput(MODEL_A, 12, 30, 30))]);
});

afterAll(async () => {
  await Promise.all(registries.map((registry) => registry.close()));
  await Promise.all([boot, ...nodes].map((node) => node.stop()));
});

describe('adversarial peers', () => {
  let rogue: SwarmNode;
  let lax: SwarmNode;
  let laxRegistry: Registry;

  beforeAll(async () => {
    // The rogue keeps its own forgeries in its DHT store (refusing genuine records others try to store there, so the
    // victim's refreshes do not overwrite them) and serves them; honest peers refuse to store them.
    const keepForgeries = async (_key: Uint8Array, value: Uint8Array) => {
      if ((await verifyServerRecord(value)).ok) throw new Error('rogue refuses genuine records');
    };
    const permissive = { corolla: async () => {}, 'corolla-peer': async () => {} };
    const anyFirst = { corolla: () => 0, 'corolla-peer': () => 0 };
    rogue = await createSwarmNode({
      transport: 'memory',
      bootstrap: [boot.multiaddrs[0]!],
      dht: { validators: { corolla: keepForgeries, 'corolla-peer': keepForgeries }, selectors: anyFirst },
    });
    // A misconfigured honest reader whose DHT layer does not validate: the registry must still verify everything.
    lax = await createSwarmNode({ transport: 'memory', bootstrap: [boot.multiaddrs[0]!], dht: { validators: permissive, selectors: anyFirst } });
    await Promise.all([rogue.waitForPeers(3), lax.waitForPeers(3)]);
    laxRegistry = await createRegistry(lax, { ...FAST, direct: 'never' });

    const victim = nodes[1]!.peerId;
    const genuine = s2.current()!.record;
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
    // 1. the victim's record, altered and re-signed by the rogue's key (claims victim's peerId)
    // (valid for a minute: the rogue's own store, like every node's, drops records once they expire)
    const stolen: ServerRecord = { ...genuine, span: { start: 0, end: 30 }, issuedAt: Date.now(), expiresAt: Date.now() + 60_000 };
    const forged = {
      record: stolen,
      signature: b64(await rogue.privateKey.sign(signingBytes('corolla/server-record/v1', stolen))),
      publicKey: b64(publicKeyToProtobuf(rogue.privateKey.publicKey)),
    };
    // 2. the victim's genuine envelope with a field tampered after signing
    const tampered = { ...s2.current()!.envelope, record: { ...genuine, cacheTokensLeft: 10 ** 9 } };
    const rogueValues: Array<[Uint8Array, Uint8Array]> = [
      [serverRecordKey(MODEL_A, victim), encodeEnvelope(forged)],
      [peerRecordKey(victim), encodeEnvelope(tampered)],
      // 3. malformed values under the rogue's own keys
      [serverRecordKey(MODEL_A, rogue.peerId), new TextEncoder().encode('{"record": "garbage"')],
      [peerRecordKey(rogue.peerId), new Uint8Array([0, 1, 2, 3, 255])],
    ];
    for (const [key, value] of rogueValues) {
      for await (const _ of rogue.libp2p.services.dht.put(key, value, { signal: AbortSignal.timeout(5000) })) { /* drain */ }
    }
    // The rogue claims to serve model A and the models index, so readers will ask it.
    for await (const _ of rogue.libp2p.services.dht.provide(modelProviderCid(MODEL_A, providerShard(rogue.peerId, MODEL_A)), { signal: AbortSignal.timeout(5000) })) { /* drain */ }
    for await (const _ of rogue.libp2p.services.dht.provide(indexProviderCid(providerShard(rogue.peerId)), { signal: AbortSignal.timeout(5000) })) { /* drain */ }
    // Asked directly about a model, it answers with an expired (but validly signed) record; otherwise with junk.
    const expired = await createSignedServerRecord(rogue.privateKey, { ...serverInput(MODEL_A, 0, 30, 30), addrs: [] }, { ttlMs: 1000, now: Date.now() - 120_000 });
    await rogue.libp2p.handle(ANNOUNCE_PROTOCOL, async (stream) => {
      const lp = lpStream(stream);
      const request = JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as { modelId?: string };
      const reply = request.modelId ? { ok: true, envelope: expired } : { ok: true, envelope: { record: 'junk' } };
      await lp.write(new TextEncoder().encode(JSON.stringify(reply)));
      await stream.close();
    });
  });

  afterAll(async () => {
    await laxRegistry.close();
    await Promise.all([rogue.stop(), lax.stop()]);
  });

  it('honest storing peers refused the rogue\'s values, so the victim\'s genuine record survives', async () => {
    for (const node of [boot, nodes[0]!, nodes[2]!]) {
      const stored = await node.libp2p.services.dht.get(peerRecordKey(nodes[1]!.peerId), { signal: AbortSignal.timeout(3000) });
      for await (const event of stored) if (event.name === 'VALUE') expect(new TextDecoder().decode(event.value)).not.toContain('1000000000');
    }
  });

  for (const which of ['strict', 'lax'] as const) {
    it(`a ${which} reader ignores forged, tampered, malformed and expired records, with reasons`, async () => {
      const reader = which === 'strict' ? client : laxRegistry;
      const result = await reader.lookupDetailed(MODEL_A);
      // only the two honest servers, each with its genuine record
      expect(result.records.map((r) => r.record.peerId).sort()).toEqual([nodes[0]!.peerId, nodes[1]!.peerId].sort());
      const victim = result.records.find((r) => r.record.peerId === nodes[1]!.peerId)!;
      expect(victim.record.span).toEqual({ start: 12, end: 30 });
      expect(result.providers).toBe(3);
      const reasons = result.rejected.map((r) => `${r.source}: ${r.reason}`).join('\n');
      if (which === 'strict') {
        // asked directly, the rogue answered with an expired record; its DHT value was discarded by kad-dht's validator
        expect(reasons).toMatch(/direct: expired/);
        expect(reasons).toMatch(/dht: rejected by DHT validator/);
      } else {
        // DHT only, no validation below: the registry's own checks caught the forged and malformed values
        expect(reasons).toMatch(/dht: publicKey belongs to .*not to the claimed peerId/);
        expect(reasons).toMatch(/dht: (malformed envelope|invalid record)/);
      }
      const models = await reader.listModels();
      expect(models.find((m) => m.modelId === MODEL_A)).toMatchObject({ servers: 2, complete: true });
      expect(models.flatMap((m) => m.records.map((r) => r.record.peerId))).not.toContain(rogue.peerId);
    });
  }

  it('junk or stale replies over the announce protocol are reasons, not crashes', async () => {
    expect(await client.fetchRecord(rogue.peerId)).toMatchObject({ ok: false, reason: 'malformed envelope: missing field "signature"' });
    const stale = await client.fetchRecord(rogue.peerId, { modelId: MODEL_A });
    expect(!stale.ok && stale.reason).toMatch(/^expired/);
    const genuine = await client.fetchRecord(nodes[0]!.peerId, { modelId: MODEL_A });
    expect(genuine.ok && genuine.record.peerId).toBe(nodes[0]!.peerId);
  });

  it('junk sent to the control protocols aborts only that stream', async () => {
    const target = nodes[0]!.libp2p.peerId;
    for (const protocol of [HEARTBEAT_PROTOCOL, ANNOUNCE_PROTOCOL]) {
      // not JSON
      const a = lpStream(await nodes[2]!.libp2p.dialProtocol(target, protocol));
      await a.write(new TextEncoder().encode('{{{ not json'));
      expect(new TextDecoder().decode((await a.read()).subarray())).toMatch(/malformed request/);
      // JSON that does not fit the request schema: MALFORMED naming the field, as a toPeerError reply
      const c = lpStream(await nodes[2]!.libp2p.dialProtocol(target, protocol));
      const body = protocol === HEARTBEAT_PROTOCOL ? { v: 1, nonce: 'abcdefgh12345678', extra: true } : { v: 1, extra: true };
      await c.write(new TextEncoder().encode(JSON.stringify(body)));
      expect(JSON.parse(new TextDecoder().decode((await c.read()).subarray()))).toEqual({
        ok: false,
        error: { code: 'MALFORMED', message: 'malformed request: unknown field "extra"' },
      });
      // a length prefix far over the limit: the server resets the stream
      const b = await nodes[2]!.libp2p.dialProtocol(target, protocol);
      b.send(new Uint8Array([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
      await expect(lpStream(b).read({ signal: AbortSignal.timeout(5000) })).rejects.toThrow();
    }
    expect((await client.heartbeat(nodes[0]!.peerId)).record.peerId).toBe(nodes[0]!.peerId);
  });

  it('records of a server that vanished expire for readers', async () => {
    const short = await createSwarmNode({ transport: 'memory', bootstrap: [boot.multiaddrs[0]!] });
    await short.waitForPeers(3);
    const registry = await createRegistry(short, { ...FAST, refreshMs: 400, ttlMs: 2500 });
    await registry.announce(serverInput('org/ephemeral', 0, 4, 4));
    // one announcing registry per node: a second one on a node that already serves the control protocols is refused
    const second = await createRegistry(nodes[0]!, FAST);
    await expect(second.announce(serverInput('org/ephemeral', 0, 4, 4))).rejects.toBeInstanceOf(SwarmConfigError);
    await second.close();
    expect((await client.heartbeat(nodes[0]!.peerId)).record.peerId).toBe(nodes[0]!.peerId); // the first still answers
    const readerNode = await createSwarmNode({ transport: 'memory', bootstrap: [boot.multiaddrs[0]!] });
    await readerNode.waitForPeers(3);
    const reader = await createRegistry(readerNode, { ...FAST, clockSkewMs: 0 });
    try {
      // an empty lookup (the record not yet spread) is not an answer: wait for one that finds something
      const seen = await eventually(async () => {
        const peers = (await reader.lookup('org/ephemeral')).map((r) => r.record.peerId);
        return peers.length > 0 ? peers : undefined;
      }, 10_000);
      expect(seen).toEqual([short.peerId]);
      // the record is re-signed every refreshMs
      const first = registry.current()!.record.issuedAt;
      await eventually(async () => registry.current()!.record.issuedAt > first, 10_000);
      await registry.close(); // no withdraw: the server just dies
      await short.stop();
      // once expiresAt passes, storing peers drop its last record (issue 7: not served), and readers find none
      const result = await eventually(async () => {
        const found = await reader.lookupDetailed('org/ephemeral');
        return found.records.length === 0 ? found : undefined;
      }, 12_000, 250);
      for (const rejected of result.rejected) expect(rejected.reason).toMatch(/expired/);
    } finally {
      await reader.close();
      await readerNode.stop();
    }
  });
});

describe('a lone first server', () => {
  it('announces without peers at once, and its record reaches peers that join later', async () => {
    const first = await createSwarmNode({ transport: 'memory' });
    const registry = await createRegistry(first, FAST);
    const started = Date.now();
    const result = await registry.announce(serverInput('org/lonely', 0, 2, 2));
    expect(result.replicas).toBe(0);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await registry.lookup('org/lonely')).map((r) => r.record.peerId)).toEqual([first.peerId]);
    const later = await createSwarmNode({ transport: 'memory', bootstrap: [first.multiaddrs[0]!] });
    const reader = await createRegistry(later, { ...FAST, direct: 'never' });
    try {
      // the retry loop (500 ms, doubling) publishes the record and provider records once a peer is there
      const found = await eventually(async () => {
        const records = await reader.lookup('org/lonely');
        return records.length === 1 ? records : undefined;
      }, 15_000, 200);
      expect(found[0]!.record.peerId).toBe(first.peerId);
    } finally {
      await Promise.all([reader.close(), registry.close()]);
      await Promise.all([later.stop(), first.stop()]);
    }
  });
});
