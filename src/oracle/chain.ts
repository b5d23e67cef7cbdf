/** The oracle's two chain interfaces on viem, over the compiled contracts' ABIs (src/chain/contracts.ts). */
import { type Account, type Address, type Chain, type Hex, type PublicClient, type Transport, type WalletClient } from 'viem';
import { agentRegistryAbi, rewardPoolAbi } from '../chain/contracts.js';
import { ChainError } from '../chain/errors.js';
import type { RegistryReader, RegistrySlasher, RewardPoolWriter } from './types.js';

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
    async reportEpoch(epoch, root, totalRewards, totalContribution) {
      let hash: Hex;
      try {
        // simulated first, so a revert (already reported, over budget, not the oracle) is an error with its reason, not a mined failure
        const { request } = await client.simulateContract({ account: wallet.account, address: pool, abi: REWARD_POOL_ABI, functionName: 'reportEpoch', args: [epoch, root, totalRewards, totalContribution] });
        hash = await wallet.writeContract(request);
      } catch (error) {
        throw new ChainError(`RewardPool ${pool}: reportEpoch(${epoch}) failed`, { cause: error });
      }
      const receipt = await client.waitForTransactionReceipt({ hash });
      if (receipt.status !== 'success') throw new ChainError(`RewardPool ${pool}: reportEpoch(${epoch}) reverted in ${hash}`);
      return hash;
    },
  };
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
