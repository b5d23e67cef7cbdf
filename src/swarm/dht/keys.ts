/**
 * Where things live in the DHT.
 *
 * Values (kad-dht put/get; one value per key, so every key has exactly ONE writer, the peer named in it):
 *   /corolla/<urlencoded modelId>/<peerId>   the peer's signed server record for that model
 *   /corolla-peer/<peerId>                   the same envelope, keyed by peer only (lets listModels learn the model)
 *
 * Membership (kad-dht provider records; many providers per CID, so concurrent servers never overwrite each other):
 *   CID(sha256("corolla/model/v1\n" + modelId + "\n" + shard))  servers of a model, split into PROVIDER_SHARDS
 *   CID(sha256("corolla/models-index/v1\n" + shard))             every server of any model
 * A peer provides one shard of each, picked by a hash of its peer id salted with the model (or the index) and the
 * current epoch (PROVIDER_EPOCH_MS), so its shard moves every epoch and differs per model. kad-dht's findProviders
 * stops after k (20) providers per CID, so sharding raises the discoverable servers per model (and overall) to
 * 20 × PROVIDER_SHARDS; the salt means ids ground to crowd one shard (and hide the servers there) are only good for
 * one model and one epoch, and a victim's shard changes under them (docs/protocols.md).
 *
 * validators.ts holds the kad-dht validators and selectors for both namespaces.
 */
import { createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';
import { create as createDigest } from 'multiformats/hashes/digest';

export const RECORD_NAMESPACE = 'corolla';
export const PEER_NAMESPACE = 'corolla-peer';
/** Fixed by the protocol: readers and writers must agree on it. */
export const PROVIDER_SHARDS = 8;
/** How long a peer's shard stays put (fixed by the protocol). Providers re-provide on the change; readers read every shard. */
export const PROVIDER_EPOCH_MS = 60 * 60_000;
/** The shard scope of the models index (model ids are never empty). */
export const INDEX_SCOPE = '';

const RAW_CODEC = 0x55;
const SHA2_256 = 0x12;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest());
}

function cidOf(text: string): CID {
  return CID.createV1(RAW_CODEC, createDigest(SHA2_256, sha256(text)));
}

/** The DHT key of a peer's record for one model. */
export function serverRecordKey(modelId: string, peerId: string): Uint8Array {
  return encoder.encode(`/${RECORD_NAMESPACE}/${encodeURIComponent(modelId)}/${peerId}`);
}

/** The DHT key of a peer's latest record, whatever its model. */
export function peerRecordKey(peerId: string): Uint8Array {
  return encoder.encode(`/${PEER_NAMESPACE}/${peerId}`);
}

/**
 * Which provider shard a peer publishes under, for a model (`scope` = model id) or the index (INDEX_SCOPE), at time
 * `now`: sha256("corolla/shard/v1\n" + scope + "\n" + epoch + "\n" + peerId), first 4 bytes mod PROVIDER_SHARDS.
 */
export function providerShard(peerId: string, scope: string = INDEX_SCOPE, now: number = Date.now()): number {
  const epoch = Math.floor(now / PROVIDER_EPOCH_MS);
  const digest = sha256(`corolla/shard/v1\n${scope}\n${epoch}\n${peerId}`);
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0) % PROVIDER_SHARDS;
}

export function modelProviderCid(modelId: string, shard: number): CID {
  return cidOf(`corolla/model/v1\n${modelId}\n${shard}`);
}

export function indexProviderCid(shard: number): CID {
  return cidOf(`corolla/models-index/v1\n${shard}`);
}

export function allModelProviderCids(modelId: string): CID[] {
  return Array.from({ length: PROVIDER_SHARDS }, (_, shard) => modelProviderCid(modelId, shard));
}

export function allIndexProviderCids(): CID[] {
  return Array.from({ length: PROVIDER_SHARDS }, (_, shard) => indexProviderCid(shard));
}

/** Splits a DHT key of ours into its parts, or undefined when it is not one. */
export function parseDhtKey(key: Uint8Array): { namespace: 'corolla'; modelId: string; peerId: string } | { namespace: 'corolla-peer'; peerId: string } | undefined {
  const text = decoder.decode(key);
  const parts = text.split('/');
  if (parts[0] !== '') return undefined;
  try {
    if (parts.length === 4 && parts[1] === RECORD_NAMESPACE && parts[2] && parts[3]) {
      return { namespace: RECORD_NAMESPACE, modelId: decodeURIComponent(parts[2]), peerId: parts[3] };
    }
    if (parts.length === 3 && parts[1] === PEER_NAMESPACE && parts[2]) return { namespace: PEER_NAMESPACE, peerId: parts[2] };
  } catch {
    return undefined;
  }
  return undefined;
}
