/**
 * The payer's side of the incentive layer: at the end of a request the gateway signs one EIP-712 Receipt per server
 * (and block span) that served it, from its own count of what it got back — never from a server's claim — and only
 * for servers whose Ethereum address is verified (NodeContribution.ethAddress holds nothing else).
 */
import type { Address, LocalAccount, TypedDataDomain } from 'viem';
import { getAddress, isAddress } from 'viem/utils';
import { receiptDomain, signReceipt, type Receipt } from '../../chain/receipts.js';
import type { NodeContribution, OutboxReceipt } from '../types.js';

/** Signing receipts and sending them to the oracle; a gateway without them signs nothing. */
export interface ReceiptSettings {
  /** The payer: the oracle must list its address among its payers. */
  readonly account: LocalAccount;
  /** The deployment the receipts are bound to (the EIP-712 domain). */
  readonly chainId: number;
  readonly rewardPool: Address;
  /** The oracle's base URL; receipts go to `${oracleUrl}/v1/receipts`. */
  readonly oracleUrl: string;
  /** How often pending receipts are sent (ms). Default RECEIPT_FLUSH_MS. */
  readonly flushMs?: number;
}

export class ReceiptSigner {
  private readonly domain: TypedDataDomain;

  constructor(private readonly account: LocalAccount, chainId: number, rewardPool: Address) {
    this.domain = receiptDomain(chainId, rewardPool);
  }

  /** The receipts of one ended request; servers credited for nothing get none. */
  async sign(request: { id: string; modelId: string }, contributions: readonly NodeContribution[], issuedAt: Date): Promise<OutboxReceipt[]> {
    // a server replaced under another peer id but the same address and blocks is one piece of work to the oracle
    const work = new Map<string, Receipt>();
    for (const c of contributions) {
      if (c.ethAddress === null || !isAddress(c.ethAddress, { strict: false })) continue;
      const server = getAddress(c.ethAddress);
      const key = `${server}:${c.blockStart}:${c.blockEnd}`;
      const previous = work.get(key);
      work.set(key, {
        sessionId: request.id,
        modelId: request.modelId,
        server,
        blockStart: c.blockStart,
        blockEnd: c.blockEnd,
        promptTokens: (previous?.promptTokens ?? 0n) + BigInt(c.promptTokens),
        generatedTokens: (previous?.generatedTokens ?? 0n) + BigInt(c.generatedTokens),
        replayedTokens: (previous?.replayedTokens ?? 0n) + BigInt(c.replayedTokens),
        issuedAt: BigInt(issuedAt.getTime()),
      });
    }
    const served = [...work.values()].filter((r) => r.promptTokens + r.generatedTokens + r.replayedTokens > 0n);
    return Promise.all(
      served.map(async (receipt) => {
        const { signature } = await signReceipt(this.account, this.domain, receipt);
        return { requestId: request.id, server: receipt.server, blockStart: receipt.blockStart, blockEnd: receipt.blockEnd, message: receiptJson(receipt), signature };
      }),
    );
  }
}

/** The Receipt as the oracle takes it: every bigint a decimal string. */
function receiptJson(receipt: Receipt): Record<string, string | number> {
  return Object.fromEntries(Object.entries(receipt).map(([field, value]) => [field, typeof value === 'bigint' ? value.toString() : value]));
}
