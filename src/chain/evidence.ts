/**
 * A payer's report of a spot-check it caught (client/spot-check.ts): EIP-712 typed data under the receipts' domain
 * (chain id and RewardPool), naming the suspect's address and peer id and the digest of the two signed replies
 * (wire/attestation.ts evidenceDigest), which the oracle recomputes from the replies themselves.
 */
import type { Address, Hex, LocalAccount, TypedDataDomain } from 'viem';

export const SPOT_CHECK_REPORT_TYPES = {
  SpotCheckReport: [
    { name: 'suspect', type: 'address' },
    { name: 'suspectPeerId', type: 'string' },
    { name: 'evidence', type: 'bytes32' },
    /** Unix ms when the payer signed it: it counts against that epoch. */
    { name: 'reportedAt', type: 'uint64' },
  ],
} as const;

export interface SpotCheckReport {
  readonly suspect: Address;
  readonly suspectPeerId: string;
  readonly evidence: Hex;
  readonly reportedAt: bigint;
}

export async function signSpotCheckReport(account: LocalAccount, domain: TypedDataDomain, report: SpotCheckReport): Promise<Hex> {
  return account.signTypedData({ domain, types: SPOT_CHECK_REPORT_TYPES, primaryType: 'SpotCheckReport', message: report });
}

/** The address that signed `report` (throws on a malformed signature). */
export async function spotCheckReportSigner(domain: TypedDataDomain, report: SpotCheckReport, signature: Hex): Promise<Address> {
  const { recoverTypedDataAddress } = await import('viem/utils');
  return recoverTypedDataAddress({ domain, types: SPOT_CHECK_REPORT_TYPES, primaryType: 'SpotCheckReport', message: report, signature });
}
