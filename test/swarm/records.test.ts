import { describe, expect, it, beforeAll } from 'vitest';
import { generateKeyPair, privateKeyToProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import {
  LOAD_REPORT_DOMAIN,
  MAX_ENVELOPE_BYTES,
  canonicalJson,
  createSignedServerRecord,
  encodeEnvelope,
  signLoadReport,
  signServerRecord,
  signingBytes,
  verifyLoadReport,
  verifyServerRecord,
  type ServerRecord,
  type SignedEnvelope,
} from '../../src/swarm/records/index.js';
import { InvalidRecordError } from '../../src/swarm/errors.js';
import { parseDhtKey, peerRecordKey, serverRecordKey, modelProviderCid, providerShard, PROVIDER_SHARDS } from '../../src/swarm/dht/keys.js';
import { validateDhtRecord, selectNewestRecord } from '../../src/swarm/dht/validators.js';
import { coverageOf } from '../../src/swarm/registry/index.js';
import { serverInput } from '../support/swarm.js';

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

let key: PrivateKey;
let other: PrivateKey;
let peerId: string;
const NOW = 1_800_000_000_000;

async function signed(overrides: Partial<Parameters<typeof serverInput>[4]> = {}, ttlMs = 60_000, now = NOW): Promise<SignedEnvelope<ServerRecord>> {
  return createSignedServerRecord(key, { ...serverInput('org/model-7b', 0, 16, 32), addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${peerId}`], ...overrides }, { ttlMs, now });
}

/** Re-signs `record` with `signer` exactly as signServerRecord would, skipping its peer-id check (a forger's tool). */
async function forge(record: ServerRecord, signer: PrivateKey): Promise<SignedEnvelope<ServerRecord>> {
  const signature = await signer.sign(signingBytes('corolla/server-record/v1', record));
  return { record, signature: b64(signature), publicKey: b64(publicKeyToProtobuf(signer.publicKey)) };
}

beforeAll(async () => {
  key = await generateKeyPair('Ed25519');
  other = await generateKeyPair('Ed25519');
  peerId = peerIdFromPrivateKey(key).toString();
});

describe('canonicalJson', () => {
  it('sorts keys at every depth, omits undefined, and is stable', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' }, u: undefined })).toBe('{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson({ x: 1, y: 2 })).toBe(canonicalJson({ y: 2, x: 1 }));
  });
  it('rejects values JSON cannot carry exactly', () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow();
    expect(() => canonicalJson({ a: Infinity })).toThrow();
    expect(() => canonicalJson({ a: 1n })).toThrow();
  });
});

describe('server records', () => {
  it('sign → encode → verify round-trips, and effective = min(compute, network)', async () => {
    const envelope = await signed();
    expect(envelope.record.peerId).toBe(peerId);
    expect(envelope.record.throughput).toEqual({ compute: 40, network: 1000, effective: 40 });
    expect(envelope.record.expiresAt - envelope.record.issuedAt).toBe(60_000);
    const result = await verifyServerRecord(encodeEnvelope(envelope), { now: NOW + 1000 });
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.record).toEqual(envelope.record);
    // also accepts the parsed object, and key order of the JSON does not matter
    const reordered = JSON.parse(JSON.stringify({ publicKey: envelope.publicKey, signature: envelope.signature, record: envelope.record }));
    expect((await verifyServerRecord(reordered, { now: NOW })).ok).toBe(true);
  });

  it('rejects a record signed by another key (claimed peerId does not derive from the key)', async () => {
    const envelope = await signed();
    const forged = await forge(envelope.record, other);
    const result = await verifyServerRecord(forged, { now: NOW });
    expect(result).toMatchObject({ ok: false, peerId });
    expect(!result.ok && result.reason).toMatch(/publicKey belongs to .*not to the claimed peerId/);
  });

  it('rejects a record whose publicKey is swapped but the signature kept', async () => {
    const envelope = await signed();
    const swapped = { ...envelope, publicKey: b64(publicKeyToProtobuf(other.publicKey)) };
    const result = await verifyServerRecord(swapped, { now: NOW });
    expect(!result.ok && result.reason).toMatch(/publicKey belongs to/);
  });

  it('rejects a field tampered with after signing', async () => {
    const envelope = await signed();
    for (const tamper of [
      (r: ServerRecord) => { r.span = { start: 0, end: 32 }; },
      (r: ServerRecord) => { r.cacheTokensLeft = 1_000_000; },
      (r: ServerRecord) => { r.state = 'joining'; },
      (r: ServerRecord) => { r.expiresAt += 1; },
      (r: ServerRecord) => { r.addrs = ['/ip4/6.6.6.6/tcp/1']; },
    ]) {
      const record = structuredClone(envelope.record);
      tamper(record);
      const result = await verifyServerRecord({ ...envelope, record }, { now: NOW });
      expect(result.ok).toBe(false);
      expect(!result.ok && result.reason).toBe('bad signature');
    }
  });

  it('rejects expired records and records issued in the future, within the skew allowance', async () => {
    const envelope = await signed({}, 10_000);
    expect((await verifyServerRecord(envelope, { now: NOW + 10_000 + 29_000 })).ok).toBe(true); // inside 30 s skew
    const expired = await verifyServerRecord(envelope, { now: NOW + 10_000 + 31_000 });
    expect(!expired.ok && expired.reason).toMatch(/^expired/);
    const strict = await verifyServerRecord(envelope, { now: NOW + 10_001, clockSkewMs: 0 });
    expect(!strict.ok && strict.reason).toMatch(/^expired/);
    const future = await verifyServerRecord(envelope, { now: NOW - 60_000 });
    expect(!future.ok && future.reason).toMatch(/in the future/);
    const longLived = await signed({}, 2 * 3600_000);
    const ttl = await verifyServerRecord(longLived, { now: NOW });
    expect(!ttl.ok && ttl.reason).toMatch(/ttl .* exceeds/);
  });

  it('checks expectations: model, peer, numBlocks', async () => {
    const envelope = await signed();
    expect((await verifyServerRecord(envelope, { now: NOW, modelId: 'org/other' })).ok).toBe(false);
    expect((await verifyServerRecord(envelope, { now: NOW, peerId: peerIdFromPrivateKey(other).toString() })).ok).toBe(false);
    const blocks = await verifyServerRecord(envelope, { now: NOW, numBlocks: 30 });
    expect(!blocks.ok && blocks.reason).toMatch(/numBlocks 32, expected 30/);
  });

  it('validates every field before signing (InvalidRecordError) and when reading (reason)', async () => {
    const bad: Array<[Partial<Parameters<typeof serverInput>[4]>, RegExp]> = [
      [{ span: { start: 10, end: 10 } }, /empty/],
      [{ span: { start: 0, end: 33 } }, /exceeds numBlocks/],
      [{ span: { start: -1, end: 3 } }, /span.start/],
      [{ numBlocks: 0 }, /numBlocks/],
      [{ cacheTokensLeft: -5 }, /cacheTokensLeft/],
      [{ cacheTokensLeft: 1.5 }, /cacheTokensLeft/],
      [{ throughput: { compute: Number.NaN, network: 1 } }, /throughput.compute/],
      [{ dtype: 'F32 with spaces' }, /dtype/],
      [{ modelId: '' }, /modelId/],
      [{ modelId: 'x'.repeat(300) }, /modelId/],
      [{ publicName: 'evil\u0007bell' }, /control/],
      [{ publicName: 'n'.repeat(65) }, /publicName/],
      [{ ethAddress: '0x1234' }, /ethAddress/],
      [{ accelerator: { kind: 'tpu' as 'cpu', name: 'x' } }, /accelerator.kind/],
      [{ load: { activeSessions: -1, queuedSteps: 0 } }, /load.activeSessions/],
      [{ state: 'dead' as 'online' }, /state/],
      [{ addrs: ['not a multiaddr'] }, /addrs\[0\]/],
    ];
    for (const [override, reason] of bad) {
      await expect(signed(override)).rejects.toThrow(InvalidRecordError);
      await expect(signed(override)).rejects.toThrow(reason);
    }
    // a validly signed record of another major version is refused by readers (unknown fields: see 'extensions' below)
    const envelope = await signed({ publicName: 'alice', location: 'EU', ethAddress: '0x' + 'ab'.repeat(20) });
    expect(envelope.record.ethAddress).toBe('0x' + 'ab'.repeat(20));
    const v2 = await forge({ ...envelope.record, v: 2 } as unknown as ServerRecord, key);
    expect(await verifyServerRecord(v2, { now: NOW })).toMatchObject({ ok: false, reason: 'invalid record: unsupported record version 2' });
  });

  it('extensions: readers accept and drop fields they do not know, which the signature still covers (docs/protocols.md)', async () => {
    const envelope = await signed();
    // what a newer minor version might add: a new optional field, and one inside a nested object
    const newer = { ...envelope.record, stakeProof: { address: '0x' + 'cd'.repeat(20), proof: 'ab'.repeat(65) }, load: { ...envelope.record.load, gpuUtil: 0.5 } };
    const extended = await forge(newer as ServerRecord, key);
    const result = await verifyServerRecord(encodeEnvelope(extended), { now: NOW });
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.record).toEqual(envelope.record); // the typed record holds only the fields this version knows
      expect(result.envelope.record).toMatchObject({ stakeProof: newer.stakeProof }); // passed on exactly as signed
    }
    // an unknown field is authenticated like any other: changing it breaks the signature
    const tampered = { ...extended, record: { ...newer, stakeProof: { ...newer.stakeProof, address: '0x' + 'ee'.repeat(20) } } };
    expect(await verifyServerRecord(tampered, { now: NOW })).toMatchObject({ ok: false, reason: 'bad signature' });
    // and bounded: a record padded past the envelope limit is refused, whether given as bytes or as an object
    const padded = await forge({ ...envelope.record, pad: 'x'.repeat(MAX_ENVELOPE_BYTES) } as ServerRecord, key);
    expect(await verifyServerRecord(padded, { now: NOW })).toMatchObject({ ok: false, reason: expect.stringMatching(/limit 8192/) });
    expect(await verifyServerRecord(encodeEnvelope(padded), { now: NOW })).toMatchObject({ ok: false, reason: expect.stringMatching(/limit 8192/) });
    // a writer signs only the fields it knows
    const signedByUs = await signServerRecord(key, newer as ServerRecord);
    expect(signedByUs.record).toEqual(envelope.record);
  });

  it('refuses to sign for another peer id or with a non-Ed25519 key', async () => {
    const envelope = await signed();
    await expect(signServerRecord(other, envelope.record)).rejects.toThrow(/not the signing key/);
    const secp = await generateKeyPair('secp256k1');
    await expect(createSignedServerRecord(secp, { ...serverInput('m', 0, 1, 1), addrs: [] }, { ttlMs: 1000 })).rejects.toThrow(/Ed25519/);
  });

  it('never throws on malformed input, and gives a reason', async () => {
    const envelope = await signed();
    const inputs: unknown[] = [
      new TextEncoder().encode('not json'),
      new Uint8Array([0xff, 0xfe, 0x00]),
      new TextEncoder().encode('null'),
      new TextEncoder().encode('[1,2,3]'),
      new Uint8Array(MAX_ENVELOPE_BYTES + 1),
      { record: envelope.record },
      { ...envelope, signature: 'not base64!' },
      { ...envelope, signature: b64(new Uint8Array(10)) },
      { ...envelope, publicKey: b64(new Uint8Array([1, 2, 3])) },
      { ...envelope, publicKey: 12 },
      { ...envelope, record: null },
      { ...envelope, record: { ...envelope.record, span: 'all' } },
      { ...envelope, record: { ...envelope.record, addrs: 'x' } },
      { ...envelope, record: { ...envelope.record, throughput: { compute: 1, network: 2, effective: 2 } } },
      { ...envelope, extra: true },
      42,
      undefined,
    ];
    for (const input of inputs) {
      const result = await verifyServerRecord(input, { now: NOW });
      expect(result.ok).toBe(false);
      expect(!result.ok && result.reason.length).toBeGreaterThan(3);
    }
  });

  it('a signed load report is not accepted as a server record (domain separation), and nonce is checked', async () => {
    const report = await signLoadReport(key, {
      v: 1, peerId, modelId: 'org/model-7b', state: 'online', load: { activeSessions: 1, queuedSteps: 0 }, cacheTokensLeft: 10, nonce: 'abcdefgh12345678', issuedAt: NOW, expiresAt: NOW + 5000,
    });
    expect((await verifyLoadReport(report, { now: NOW, nonce: 'abcdefgh12345678' })).ok).toBe(true);
    expect(await verifyLoadReport(report, { now: NOW, nonce: 'zzzzzzzzzzzzzzzz' })).toMatchObject({ ok: false, reason: 'nonce does not match the request' });
    // same signature bytes presented as a record of the other kind fail
    const envelope = await signed();
    const crossed = { ...envelope, signature: b64(await key.sign(signingBytes(LOAD_REPORT_DOMAIN, envelope.record))) };
    expect(await verifyServerRecord(crossed, { now: NOW })).toMatchObject({ ok: false, reason: 'bad signature' });
  });
});

describe('DHT keys, validator and selector', () => {
  it('builds and parses keys, with model ids containing slashes', () => {
    const key1 = serverRecordKey('HuggingFaceTB/SmolLM2-135M', peerId);
    expect(new TextDecoder().decode(key1)).toBe(`/corolla/HuggingFaceTB%2FSmolLM2-135M/${peerId}`);
    expect(parseDhtKey(key1)).toEqual({ namespace: 'corolla', modelId: 'HuggingFaceTB/SmolLM2-135M', peerId });
    expect(parseDhtKey(peerRecordKey(peerId))).toEqual({ namespace: 'corolla-peer', peerId });
    expect(parseDhtKey(new TextEncoder().encode('/pk/abc'))).toBeUndefined();
    expect(providerShard(peerId)).toBeLessThan(PROVIDER_SHARDS);
    expect(modelProviderCid('m', 0).toString()).not.toBe(modelProviderCid('m', 1).toString());
  });

  it('the validator binds the value to the key (model and peer)', async () => {
    const envelope = await createSignedServerRecord(key, { ...serverInput('org/model-7b', 0, 16, 32), addrs: [] }, { ttlMs: 60_000 });
    const bytes = encodeEnvelope(envelope);
    await expect(validateDhtRecord(serverRecordKey('org/model-7b', peerId), bytes)).resolves.toBeUndefined();
    await expect(validateDhtRecord(peerRecordKey(peerId), bytes)).resolves.toBeUndefined();
    await expect(validateDhtRecord(serverRecordKey('org/other', peerId), bytes)).rejects.toThrow(/expected org\/other/);
    const otherPeer = peerIdFromPrivateKey(other).toString();
    await expect(validateDhtRecord(serverRecordKey('org/model-7b', otherPeer), bytes)).rejects.toThrow(/expected/);
    await expect(validateDhtRecord(peerRecordKey(peerId), new TextEncoder().encode('{'))).rejects.toThrow(/malformed/);
  });

  it('the selector prefers the newest valid record and skips invalid ones', async () => {
    const now = Date.now();
    const old = encodeEnvelope(await createSignedServerRecord(key, { ...serverInput('m', 0, 1, 2), addrs: [] }, { ttlMs: 60_000, now: now - 5000 }));
    const fresh = encodeEnvelope(await createSignedServerRecord(key, { ...serverInput('m', 1, 2, 2), addrs: [] }, { ttlMs: 60_000, now }));
    const garbage = new TextEncoder().encode('garbage');
    const forgedNewer = encodeEnvelope(await forge({ ...(await signed({}, 60_000, now + 1000)).record }, other));
    expect(await selectNewestRecord(peerRecordKey(peerId), [old, fresh, garbage, forgedNewer])).toBe(1);
    expect(await selectNewestRecord(peerRecordKey(peerId), [garbage, old])).toBe(1);
  });
});

describe('coverageOf', () => {
  it('sums online servers and throughput per block and finds gaps', async () => {
    const now = Date.now();
    const make = async (start: number, end: number, state: 'online' | 'joining' | 'offline', compute: number) => {
      const envelope = await createSignedServerRecord(key, { ...serverInput('m', start, end, 10, { state, throughput: { compute, network: 100 } }), addrs: [] }, { ttlMs: 60_000, now });
      return { record: envelope.record, envelope };
    };
    const full = coverageOf('m', [await make(0, 6, 'online', 10), await make(4, 10, 'online', 20), await make(0, 10, 'offline', 99), await make(0, 10, 'joining', 99)]);
    expect(full).toMatchObject({ numBlocks: 10, servers: 2, joining: 1, coveredBlocks: 10, complete: true, minThroughput: 10 });
    expect(full.blocks[4]).toEqual({ servers: 2, throughput: 30 });
    expect(full.blocks[9]).toEqual({ servers: 1, throughput: 20 });
    const gap = coverageOf('m', [await make(0, 3, 'online', 10), await make(5, 10, 'online', 10)]);
    expect(gap).toMatchObject({ coveredBlocks: 8, complete: false, minThroughput: 0 });
  });
});

// keep the protobuf import used (identity tests use it too): the key encodes and decodes
it('protobuf private key encoding is stable', () => {
  expect(privateKeyToProtobuf(key).byteLength).toBe(68);
});
