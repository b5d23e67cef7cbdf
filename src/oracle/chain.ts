/**
 * The oracle's two chain interfaces on viem. The ABI fragments are the few functions used, by their names in the
 * contracts, so the compiled ABIs can replace them one for one.
 */
import { parseAbi, type Account, type Address, type Chain, type Hex, type PublicClient, type Transport, type WalletClient } from 'viem';
import { ChainError } from '../chain/errors.js';
import type { RegistryReader, RewardPoolWriter } from './types.js';

export const REGISTRY_ABI = parseAbi(['function isActive(address agent) view returns (bool)']);
export const REWARD_POOL_ABI = parseAbi([
  'function reportEpoch(uint256 epoch, bytes32 merkleRoot, uint256 totalRewards, uint256 totalContribution)',
  'function epochBudget(uint256 epoch) view returns (uint256)',
]);

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
        return await client.readContract({ address: pool, abi: REWARD_POOL_ABI, functionName: 'epochBudget', args: [epoch] });
      } catch (error) {
        throw new ChainError(`RewardPool ${pool}: epochBudget(${epoch}) failed`, { cause: error });
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
