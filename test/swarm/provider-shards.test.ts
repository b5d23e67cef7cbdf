/**
 * Provider shards a peer cannot choose once and for all by grinding its id: the shard is salted with the model and
 * the epoch, so ids ground into one shard for one model and epoch scatter for the next epoch and for other models.
 */
import { describe, expect, it } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { PROVIDER_EPOCH_MS, PROVIDER_SHARDS, providerShard } from '../../src/swarm/dht/keys.js';

const MODEL = 'org/victim-model';

async function grind(count: number, shard: number, now: number): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < count) {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    if (providerShard(id, MODEL, now) === shard) ids.push(id);
  }
  return ids;
}

describe('provider shards', () => {
  it('ids ground into one shard scatter in the next epoch and for another model', async () => {
    const now = Date.now();
    const ground = await grind(24, 3, now);
    const nextEpoch = ground.map((id) => providerShard(id, MODEL, now + PROVIDER_EPOCH_MS));
    const otherModel = ground.map((id) => providerShard(id, 'org/other-model', now));
    // uniform would put 3 of 24 in shard 3; the attacker's crowd is gone either way
    expect(nextEpoch.filter((shard) => shard === 3).length).toBeLessThan(12);
    expect(new Set(nextEpoch).size).toBeGreaterThanOrEqual(4);
    expect(otherModel.filter((shard) => shard === 3).length).toBeLessThan(12);
    expect(new Set(otherModel).size).toBeGreaterThanOrEqual(4);
  });

  it('within an epoch the shard is stable and in range', async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    const start = Math.floor(Date.now() / PROVIDER_EPOCH_MS) * PROVIDER_EPOCH_MS;
    const shard = providerShard(id, MODEL, start);
    expect(providerShard(id, MODEL, start + PROVIDER_EPOCH_MS - 1)).toBe(shard);
    expect(shard).toBeGreaterThanOrEqual(0);
    expect(shard).toBeLessThan(PROVIDER_SHARDS);
  });
});
