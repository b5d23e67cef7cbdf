/**
 * Corolla's contracts for viem: the typed ABIs, their deployment, and typed handles on deployed ones.
 * - AgentRegistry: servers register, store their libp2p peer id, are (de)activated, and slashed when caught.
 * - RewardPool: native-currency budgets per epoch; the oracle reports each ended epoch as a Merkle root (see
 *   merkle.ts) and each server claims its own leaf.
 * The ABIs and bytecode come from src/chain/artifacts/, compiled ahead of time (`npm run contracts:compile`).
 */
import { getContract, keccak256, type GetContractReturnType, toHex, type Account, type Address, type Chain, type Hash, type PublicClient, type Transport, type WalletClient } from 'viem';
import agentRegistryArtifact from './artifacts/AgentRegistry.json' with { type: 'json' };
import { agentRegistryAbi, rewardPoolAbi } from './artifacts/abis.js';
import rewardPoolArtifact from './artifacts/RewardPool.json' with { type: 'json' };
import { ChainError } from './errors.js';
import { confirmTransaction } from './transactions.js';

export { agentRegistryAbi, confirmTransaction, rewardPoolAbi };

/** Role ids, as the contracts define them (keccak256 of the name). */
export const ADMIN_ROLE = keccak256(toHex('ADMIN_ROLE'));
export const VERIFIER_ROLE = keccak256(toHex('VERIFIER_ROLE'));
export const ORACLE_ROLE = keccak256(toHex('ORACLE_ROLE'));

export interface ChainClients {
  /** Signs and sends, on its chain; its account pays for deployment. */
  readonly walletClient: WalletClient<Transport, Chain, Account>;
  readonly publicClient: PublicClient;
}

export interface DeployOptions {
  /** Holds DEFAULT_ADMIN_ROLE and ADMIN_ROLE on both contracts. */
  readonly admin: Address;
  /** Holds ORACLE_ROLE on the RewardPool. */
  readonly oracle: Address;
  readonly epochDurationSeconds: bigint | number;
}

export interface DeployedContracts {
  readonly agentRegistry: Address;
  readonly rewardPool: Address;
}

async function deployed(publicClient: PublicClient, what: string, send: () => Promise<Hash>): Promise<Address> {
  let hash: Hash;
  try {
    hash = await send();
  } catch (error) {
    throw new ChainError(`${what}: ${(error as Error).message}`, { cause: error });
  }
  const receipt = await confirmTransaction(publicClient, hash, what);
  if (!receipt.contractAddress) throw new ChainError(`${what}: transaction ${hash} created no contract`);
  return receipt.contractAddress;
}

/** Deploys the AgentRegistry and the RewardPool (one after the other, from the wallet client's account). */
export async function deployContracts(clients: ChainClients, options: DeployOptions): Promise<DeployedContracts> {
  const { walletClient, publicClient } = clients;
  const agentRegistry = await deployed(publicClient, 'deploying AgentRegistry', () =>
    walletClient.deployContract({
      abi: agentRegistryAbi,
      bytecode: agentRegistryArtifact.bytecode as Hash,
      args: [options.admin],
      account: walletClient.account,
      chain: walletClient.chain,
    }),
  );
  const rewardPool = await deployed(publicClient, 'deploying RewardPool', () =>
    walletClient.deployContract({
      abi: rewardPoolAbi,
      bytecode: rewardPoolArtifact.bytecode as Hash,
      args: [options.admin, options.oracle, BigInt(options.epochDurationSeconds)],
      account: walletClient.account,
      chain: walletClient.chain,
    }),
  );
  return { agentRegistry, rewardPool };
}

type Clients = { public: PublicClient; wallet: ChainClients['walletClient'] };
export type AgentRegistryContract = GetContractReturnType<typeof agentRegistryAbi, Clients>;
export type RewardPoolContract = GetContractReturnType<typeof rewardPoolAbi, Clients>;

/** The AgentRegistry at `address`: typed `read`, `write`, `simulate` and event methods. */
export function agentRegistryAt(clients: ChainClients, address: Address): AgentRegistryContract {
  return getContract({ address, abi: agentRegistryAbi, client: { public: clients.publicClient, wallet: clients.walletClient } });
}

/** The RewardPool at `address`: typed `read`, `write`, `simulate` and event methods. */
export function rewardPoolAt(clients: ChainClients, address: Address): RewardPoolContract {
  return getContract({ address, abi: rewardPoolAbi, client: { public: clients.publicClient, wallet: clients.walletClient } });
}
