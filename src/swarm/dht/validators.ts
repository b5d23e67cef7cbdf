/**
 * kad-dht validators and selectors for Corolla's key namespaces (keys.ts). They are installed on every node, so
 * storing peers reject forged, expired or malformed values, and readers keep the newest valid value.
 */
import type { SelectFn, ValidateFn } from '@libp2p/kad-dht';
import { InvalidRecordError } from '../errors.js';
import { verifyServerRecord } from '../records/index.js';
import { PEER_NAMESPACE, RECORD_NAMESPACE, parseDhtKey } from './keys.js';

/** kad-dht validator: the value must be a valid, fresh record signed by the peer (and for the model) in the key. */
export const validateDhtRecord: ValidateFn = async (key, value) => {
  const parsed = parseDhtKey(key);
  if (!parsed) throw new InvalidRecordError('DHT key is not a Corolla key');
  const result = await verifyServerRecord(value, {
    peerId: parsed.peerId,
    modelId: parsed.namespace === RECORD_NAMESPACE ? parsed.modelId : undefined,
  });
  if (!result.ok) throw new InvalidRecordError(result.reason);
};

/** kad-dht selector: the valid record with the newest issuedAt wins. */
export const selectNewestRecord: SelectFn = async (_key, values) => {
  let best = 0;
  let bestIssuedAt = -Infinity;
  for (const [index, value] of values.entries()) {
    const result = await verifyServerRecord(value);
    const issuedAt = result.ok ? result.record.issuedAt : -Infinity;
    if (issuedAt > bestIssuedAt) {
      best = index;
      bestIssuedAt = issuedAt;
    }
  }
  return best;
};

/** kad-dht's built-in /pk/ namespace is not needed (peer ids embed Ed25519 keys); refusing it keeps the store Corolla-only. */
const refusePublicKeyRecord: ValidateFn = async () => {
  throw new InvalidRecordError('public key records are not stored here');
};

export const dhtValidators: Record<string, ValidateFn> = { [RECORD_NAMESPACE]: validateDhtRecord, [PEER_NAMESPACE]: validateDhtRecord, pk: refusePublicKeyRecord };
export const dhtSelectors: Record<string, SelectFn> = { [RECORD_NAMESPACE]: selectNewestRecord, [PEER_NAMESPACE]: selectNewestRecord };
