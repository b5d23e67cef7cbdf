/**
 * A real local chain for tests: src/chain/anvil.ts's anvil (COROLLA_TEST_ANVIL names another binary), with viem
 * clients and anvil's cheat methods. `stop()` kills anvil's whole process group.
 */
import { BaseError, ContractFunctionRevertedError, createPublicClient, createTestClient, createWalletClient, http, type Account, type PublicClient, type TestClient } from 'viem';
import type { HDAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { ANVIL_DEV_MNEMONIC, startLocalAnvil, type LocalAnvilSettings } from '../../src/chain/anvil.js';
import type { ChainClients } from '../../src/chain/contracts.js';

export { ANVIL_CHAIN_ID } from '../../src/chain/anvil.js';
export const ANVIL_MNEMONIC = ANVIL_DEV_MNEMONIC;

export interface Anvil {
  readonly rpcUrl: string;
  /** The dev accounts of anvil's default mnemonic, funded. */
  readonly accounts: readonly HDAccount[];
  readonly publicClient: PublicClient;
  /** anvil's cheat methods: increaseTime, mine, setBalance… */
  readonly testClient: TestClient<'anvil'>;
  /** Wallet and public clients that sign as `account`. */
  clientsFor(account: Account): ChainClients;
  /** Moves the chain's clock on by `seconds` and mines a block at the new time. */
  advanceTime(seconds: number): Promise<void>;
  stop(): void;
}

/** Starts anvil and resolves once its RPC answers; rejects (with its stderr) if it exits or does not answer in time. */
export async function startAnvil(settings: Omit<LocalAnvilSettings, 'binary'> = {}): Promise<Anvil> {
  const { rpcUrl, accounts, stop } = await startLocalAnvil({ ...settings, binary: process.env.COROLLA_TEST_ANVIL });
  const transport = http(rpcUrl);
  const publicClient = createPublicClient({ chain: foundry, transport, pollingInterval: 10 }) as PublicClient;
  const testClient = createTestClient({ chain: foundry, mode: 'anvil', transport });
  return {
    rpcUrl,
    accounts,
    publicClient,
    testClient,
    clientsFor: (account) => ({ walletClient: createWalletClient({ account, chain: foundry, transport }), publicClient }),
    advanceTime: async (seconds) => {
      await testClient.increaseTime({ seconds });
      await testClient.mine({ blocks: 1 });
    },
    stop,
  };
}

export interface Revert {
  /** The custom error's name (or the reason string). */
  readonly name: string;
  readonly args: readonly unknown[];
}

/** What a contract call reverted with, decoded by its ABI; fails if it did not revert. */
export async function revertOf(call: Promise<unknown>): Promise<Revert> {
  try {
    await call;
  } catch (error) {
    const reverted = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    if (reverted instanceof ContractFunctionRevertedError) {
      return { name: reverted.data?.errorName ?? reverted.reason ?? 'unknown revert', args: reverted.data?.args ?? [] };
    }
    throw error;
  }
  throw new Error('the call did not revert');
}
