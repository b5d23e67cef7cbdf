/** The oracle's two chain interfaces on viem, over the compiled contracts' ABIs (src/chain/contracts.ts). */
import { type Account, type Address, type Chain, type Hex, type PublicClient, type Transport, type WalletClient } from 'viem';
import { agentRegistryAbi, rewardPoolAbi } from '../chain/artifacts/abis.js';
import { ChainError } from '../chain/errors.js';
import type { EpochSchedule, RegistryReader, RegistrySlasher, RewardPoolWriter } from './types.js';

const REGISTRY_ABI = agentRegistryAbi;
const REWARD_POOL_ABI = rewardPoolAbi;

export function viemRegistryReader(client: PublicClient, registry: Address): RegistryReader {
  return {
    async isActive(server) {
      try {
        return await client.readContract({ address: registry, abi: REGISTRY_ABI, functionName: 'isActive', args: [server] });
      } catch (error) {
        throw new ChainError(`AgentRegistry ${registry}: isActive(${server}) failed`, { cause: error });
      }
    },
  };
}

export function viemRewardPoolWriter(client: PublicClient, wallet: WalletClient<Transport, Chain | undefined, Account>, pool: Address): RewardPoolWriter {
  return {
    async epochBudget(epoch) {
      try {
        return (await client.readContract({ address: pool, abi: REWARD_POOL_ABI, functionName: 'getEpoch', args: [epoch] })).budget;
      } catch (error) {
        throw new ChainError(`RewardPool ${pool}: getEpoch(${epoch}) failed`, { cause: error });
      }
    },
    async reportedEpoch(epoch) {
      try {
        const record = await client.readContract({ address: pool, abi: REWARD_POOL_ABI, functionName: 'getEpoch', args: [epoch] });
        if (!record.reported) return undefined;
        const [event] = await client.getContractEvents({ address: pool, abi: REWARD_POOL_ABI, eventName: 'EpochReported', args: { epoch }, fromBlock: 0n, strict: true });
        if (!event?.transactionHash) throw new ChainError(`RewardPool ${pool}: epoch ${epoch} is reported but its EpochReported event was not found`);
        return { root: record.merkleRoot, txHash: event.transactionHash };
      } catch (error) {
        if (error instanceof ChainError) throw error;
        throw new ChainError(`RewardPool ${pool}: reading epoch ${epoch}'s report failed`, { cause: error });
      }
    },
    async reportEpoch(epoch, root, totalRewards, totalContribution) {
      let hash: Hex;
      try {
        // simulated first, so a revert (already reported, over budget, not the oracle) is an error with its reason, not a mined failure
        const { request } = await client.simulateContract({ account: wallet.account, address: pool, abi: REWARD_POOL_ABI, functionName: 'reportEpoch', args: [epoch, root, totalRewards, totalContribution] });
        hash = await wallet.writeContract(request);
      } catch (error) {
        throw new ChainError(`RewardPool ${pool}: reportEpoch(${epoch}) failed: ${reason(error)}`, { cause: error });
      }
      const receipt = await client.waitForTransactionReceipt({ hash });
      if (receipt.status !== 'success') throw new ChainError(`RewardPool ${pool}: reportEpoch(${epoch}) reverted in ${hash}`);
      return hash;
    },
  };
}

/** The RewardPool's genesis and epoch length (both immutable in the contract), read once at start. */
export async function readEpochSchedule(client: PublicClient, pool: Address): Promise<EpochSchedule> {
  try {
    const [genesis, epochDuration] = await Promise.all([
      client.readContract({ address: pool, abi: REWARD_POOL_ABI, functionName: 'genesis' }),
      client.readContract({ address: pool, abi: REWARD_POOL_ABI, functionName: 'epochDuration' }),
    ]);
    return { genesisMs: Number(genesis) * 1000, epochDurationMs: Number(epochDuration) * 1000 };
  } catch (error) {
    throw new ChainError(`RewardPool ${pool}: reading genesis and epochDuration failed (is it a RewardPool?)`, { cause: error });
  }
}

/** viem's one-line reason (e.g. the decoded revert), not its multi-line report. */
function reason(error: unknown): string {
  return (error as { shortMessage?: string }).shortMessage ?? (error as Error).message;
}

/** AgentRegistry.slash through `wallet`, whose account must hold VERIFIER_ROLE (or be the admin). */
export function viemRegistrySlasher(client: PublicClient, wallet: WalletClient<Transport, Chain | undefined, Account>, registry: Address): RegistrySlasher {
  return {
    async slash(server, reason) {
      let hash: Hex;
      try {
        const { request } = await client.simulateContract({ account: wallet.account, address: registry, abi: REGISTRY_ABI, functionName: 'slash', args: [server, reason] });
        hash = await wallet.writeContract(request);
      } catch (error) {
        throw new ChainError(`AgentRegistry ${registry}: slash(${server}) failed`, { cause: error });
      }
      const receipt = await client.waitForTransactionReceipt({ hash });
      if (receipt.status !== 'success') throw new ChainError(`AgentRegistry ${registry}: slash(${server}) reverted in ${hash}`);
      return hash;
    },
  };
}
