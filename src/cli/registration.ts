/**
 * The start-up check of `corolla serve` against the AgentRegistry: is the server's address registered and active?
 * Without `--registry` it is skipped (said so in the log). With `--register`, an unregistered address registers
 * itself: register(name, metadata) with the peer id in the metadata JSON.
 *
 */
import type { Address, LocalAccount } from 'viem';
import { agentRegistryAbi } from '../chain/artifacts/abis.js';
import { AgentInactiveError, ChainError, NotRegisteredError } from '../chain/errors.js';
import type { Logger } from '../util/logger.js';
import { UsageError } from './errors.js';

const REGISTRY_ABI = agentRegistryAbi;

export interface RegistrationOptions {
  /** The AgentRegistry's address; without it the check is skipped. */
  readonly registry?: string;
  readonly rpcUrl?: string;
  /** Register the address when it is not registered yet. */
  readonly register?: boolean;
  /** What register() records: the server's name and its libp2p peer id. */
  readonly name: string;
  readonly peerId: string;
}

/** Checks that `account` is registered and active (or registers it); throws a typed error otherwise. */
export async function checkRegistration(account: LocalAccount, options: RegistrationOptions, log: Logger): Promise<void> {
  if (options.registry === undefined) {
    log('registration check skipped: no --registry given');
    return;
  }
  // viem's clients take half a second to import: a server without --registry never loads them
  const { createPublicClient, createWalletClient, http, isAddress } = await import('viem');
  if (!isAddress(options.registry)) throw new UsageError(`--registry must be a contract address (0x + 40 hex digits), got "${options.registry}"`);
  if (options.rpcUrl === undefined) throw new UsageError('--registry needs --rpc-url (or COROLLA_RPC_URL)');
  const registry: Address = options.registry;
  const transport = http(options.rpcUrl);
  const client = createPublicClient({ transport });
  const read = async (functionName: 'isRegistered' | 'isActive'): Promise<boolean> => {
    try {
      return await client.readContract({ address: registry, abi: REGISTRY_ABI, functionName, args: [account.address] });
    } catch (error) {
      throw new ChainError(`${functionName}(${account.address}) on the AgentRegistry at ${registry} failed`, { cause: error });
    }
  };
  if (!(await read('isRegistered'))) {
    if (!options.register) throw new NotRegisteredError(account.address, registry);
    try {
      // chain null: the RPC node's chain id goes into the signature (EIP-155), whatever the chain is
      const wallet = createWalletClient({ account, transport });
      const metadata = JSON.stringify({ peerId: options.peerId });
      const hash = await wallet.writeContract({ address: registry, abi: REGISTRY_ABI, functionName: 'register', args: [options.name, metadata], chain: null });
      const receipt = await client.waitForTransactionReceipt({ hash });
      if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`);
      log(`registered ${account.address} in the AgentRegistry at ${registry} (tx ${hash})`);
    } catch (error) {
      throw new ChainError(`registering ${account.address} in the AgentRegistry at ${registry} failed`, { cause: error });
    }
  }
  if (!(await read('isActive'))) throw new AgentInactiveError(account.address, registry);
  log(`${account.address} is registered and active in the AgentRegistry at ${registry}`);
}
