/**
 * Waiting for a transaction, apart from contracts.ts: this needs no viem code at run time, so what imports it (the
 * rewards, which a server's start loads) does not pay for viem's contract and client modules.
 */
import type { Hash, PublicClient, TransactionReceipt } from 'viem';
import { ChainError } from './errors.js';

/** Waits for a transaction and returns its receipt; a revert or an RPC failure is a ChainError naming `what`. */
export async function confirmTransaction(publicClient: PublicClient, hash: Hash, what: string): Promise<TransactionReceipt> {
  let receipt: TransactionReceipt;
  try {
    receipt = await publicClient.waitForTransactionReceipt({ hash });
  } catch (error) {
    throw new ChainError(`${what}: no receipt for ${hash}: ${(error as Error).message}`, { cause: error });
  }
  if (receipt.status !== 'success') throw new ChainError(`${what}: transaction ${hash} reverted`);
  return receipt;
}
