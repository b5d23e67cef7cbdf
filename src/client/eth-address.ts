/**
 * Which Ethereum address a server belongs to, as far as anyone may pay it: the record's `ethAddress` only when its
 * `ethBinding` verifies (chain/binding.ts). An address without a binding, or with one that does not verify, is a
 * claim anyone could make about any peer, so it counts as none.
 */
import type { Address, Hex } from 'viem';
import { getAddress } from 'viem/utils';
import { verifyBinding } from '../chain/binding.js';
import type { ServerRecord } from '../swarm/records/schema.js';

export type BindingRecord = Pick<ServerRecord, 'peerId' | 'ethAddress' | 'ethBinding'>;

/** Verdicts by binding, so a record refreshed every few seconds is not recovered again each time (bounded: FIFO). */
const verdicts = new Map<string, boolean>();
const MAX_VERDICTS = 4096;

/** The record's Ethereum address (checksummed) when its binding to the record's peer id verifies, else null. */
export async function verifiedEthAddress(record: BindingRecord): Promise<Address | null> {
  const { peerId, ethAddress, ethBinding } = record;
  if (ethAddress === undefined || ethBinding === undefined) return null;
  const key = `${peerId} ${ethAddress} ${ethBinding.issuedAt} ${ethBinding.signature}`;
  let valid = verdicts.get(key);
  if (valid === undefined) {
    valid = await verifyBinding({ peerId, ethAddress: ethAddress as Address, issuedAt: BigInt(ethBinding.issuedAt), signature: ethBinding.signature as Hex }, peerId);
    if (verdicts.size >= MAX_VERDICTS) verdicts.delete(verdicts.keys().next().value!);
    verdicts.set(key, valid);
  }
  return valid ? getAddress(ethAddress) : null;
}

/** Peer id → verified Ethereum address, for the records whose binding verifies. */
export async function verifiedEthAddresses(records: readonly BindingRecord[]): Promise<Map<string, Address>> {
  const addresses = await Promise.all(records.map(verifiedEthAddress));
  return new Map(records.flatMap((r, i) => (addresses[i] ? [[r.peerId, addresses[i]] as const] : [])));
}
