/**
 * What payers and servers sign for the incentive layer, as EIP-712 typed data (viem):
 * - a Receipt, signed by the PAYER (a gateway or client) per server per session: the work it received, counted by
 *   itself from what it actually got back, never from the server's claim;
 * - NodeMetrics, signed by a SERVER about itself (tokens, latency, uptime): informative; receipts are the truth.
 * The domain binds signatures to one chain and one RewardPool deployment, so a receipt cannot be replayed elsewhere.
 */
import type { Address, Hex, LocalAccount, TypedDataDomain } from 'viem';

export const RECEIPT_DOMAIN_NAME = 'Corolla';
export const RECEIPT_DOMAIN_VERSION = '1';

export const RECEIPT_TYPES = {
  Receipt: [
    { name: 'sessionId', type: 'string' },
    { name: 'modelId', type: 'string' },
    { name: 'server', type: 'address' },
    { name: 'blockStart', type: 'uint32' },
    { name: 'blockEnd', type: 'uint32' },
    { name: 'promptTokens', type: 'uint64' },
    { name: 'generatedTokens', type: 'uint64' },
    { name: 'replayedTokens', type: 'uint64' },
    /** Unix ms when the payer signed it. */
    { name: 'issuedAt', type: 'uint64' },
  ],
} as const;

export const NODE_METRICS_TYPES = {
  NodeMetrics: [
    { name: 'server', type: 'address' },
    { name: 'peerId', type: 'string' },
    /** The period reported, unix ms [periodStart, periodEnd). */
    { name: 'periodStart', type: 'uint64' },
    { name: 'periodEnd', type: 'uint64' },
    { name: 'tokensServed', type: 'uint64' },
    { name: 'sessions', type: 'uint32' },
    { name: 'meanStepLatencyUs', type: 'uint64' },
    { name: 'uptimeSeconds', type: 'uint64' },
  ],
} as const;

export interface Receipt {
  readonly sessionId: string;
  readonly modelId: string;
  readonly server: Address;
  readonly blockStart: number;
  readonly blockEnd: number;
  readonly promptTokens: bigint;
  readonly generatedTokens: bigint;
  readonly replayedTokens: bigint;
  readonly issuedAt: bigint;
}

export interface NodeMetrics {
  readonly server: Address;
  readonly peerId: string;
  readonly periodStart: bigint;
  readonly periodEnd: bigint;
  readonly tokensServed: bigint;
  readonly sessions: number;
  readonly meanStepLatencyUs: bigint;
  readonly uptimeSeconds: bigint;
}

export interface Signed<T> {
  readonly message: T;
  readonly signature: Hex;
}

/** The domain of one deployment: the chain and the RewardPool that pays for the work. */
export function receiptDomain(chainId: number, rewardPool: Address): TypedDataDomain {
  return { name: RECEIPT_DOMAIN_NAME, version: RECEIPT_DOMAIN_VERSION, chainId, verifyingContract: rewardPool };
}

export async function signReceipt(account: LocalAccount, domain: TypedDataDomain, receipt: Receipt): Promise<Signed<Receipt>> {
  const signature = await account.signTypedData({ domain, types: RECEIPT_TYPES, primaryType: 'Receipt', message: receipt });
  return { message: receipt, signature };
}

/** The payer who signed `signed` (throws on a malformed signature). */
export async function receiptSigner(domain: TypedDataDomain, signed: Signed<Receipt>): Promise<Address> {
  const { recoverTypedDataAddress } = await import('viem/utils');
  return recoverTypedDataAddress({ domain, types: RECEIPT_TYPES, primaryType: 'Receipt', message: signed.message, signature: signed.signature });
}

export async function signNodeMetrics(account: LocalAccount, domain: TypedDataDomain, metrics: NodeMetrics): Promise<Signed<NodeMetrics>> {
  const signature = await account.signTypedData({ domain, types: NODE_METRICS_TYPES, primaryType: 'NodeMetrics', message: metrics });
  return { message: metrics, signature };
}

export async function nodeMetricsSigner(domain: TypedDataDomain, signed: Signed<NodeMetrics>): Promise<Address> {
  const { recoverTypedDataAddress } = await import('viem/utils');
  return recoverTypedDataAddress({ domain, types: NODE_METRICS_TYPES, primaryType: 'NodeMetrics', message: signed.message, signature: signed.signature });
}
