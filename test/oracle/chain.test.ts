/** The oracle's view of a real RewardPool on anvil: the epoch schedule comes from the contract, and a report already on chain is found (with its transaction). */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseEther } from 'viem';
import { confirmTransaction, deployContracts, rewardPoolAt } from '../../src/chain/contracts.js';
import { readEpochSchedule, viemRewardPoolWriter } from '../../src/oracle/chain.js';
import { startAnvil, type Anvil } from '../support/anvil.js';

const EPOCH_SECONDS = 90;
let anvil: Anvil;

beforeAll(async () => {
  anvil = await startAnvil();
});
afterAll(() => anvil?.stop());

it('reads genesis and epochDuration from the RewardPool, and finds an epoch already reported with its root and transaction', async () => {
  const [admin, oracle] = anvil.accounts;
  const { rewardPool } = await deployContracts(anvil.clientsFor(admin!), { admin: admin!.address, oracle: oracle!.address, epochDurationSeconds: EPOCH_SECONDS });
  const deployedAt = (await anvil.publicClient.getBlock()).timestamp;
  expect(await readEpochSchedule(anvil.publicClient, rewardPool)).toEqual({ genesisMs: Number(deployedAt) * 1000, epochDurationMs: EPOCH_SECONDS * 1000 });
  await expect(readEpochSchedule(anvil.publicClient, admin!.address)).rejects.toThrow(/is it a RewardPool/);

  const clients = anvil.clientsFor(oracle!);
  const writer = viemRewardPoolWriter(anvil.publicClient, clients.walletClient, rewardPool);
  await confirmTransaction(anvil.publicClient, await rewardPoolAt(anvil.clientsFor(admin!), rewardPool).write.fundEpoch([0n], { value: parseEther('1') }), 'fund');
  expect(await writer.reportedEpoch(0n)).toBeUndefined();
  await anvil.advanceTime(EPOCH_SECONDS);
  const root = `0x${'11'.repeat(32)}` as const;
  const txHash = await writer.reportEpoch(0n, root, parseEther('0.5'), 10n);
  expect(await writer.reportedEpoch(0n)).toEqual({ root, txHash });
  expect(await writer.reportedEpoch(1n)).toBeUndefined();
});
