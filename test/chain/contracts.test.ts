/**
 * AgentRegistry and RewardPool on a real anvil chain through viem: every function, guard and event, a reentrant
 * claimer, the gas of one 1,000-node epoch, and the committed artifacts against a fresh solc compile.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseEther, parseEventLogs, toFunctionSelector, type Abi, type Address, type Hash, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildArtifacts, compileSolidity } from '../../scripts/compile-contracts.js';
import { ChainError } from '../../src/chain/errors.js';
import {
  ADMIN_ROLE,
  agentRegistryAbi,
  agentRegistryAt,
  confirmTransaction,
  deployContracts,
  ORACLE_ROLE,
  rewardPoolAbi,
  rewardPoolAt,
  VERIFIER_ROLE,
  type DeployedContracts,
} from '../../src/chain/contracts.js';
import { RewardTree, type RewardLeaf } from '../../src/chain/merkle.js';
import { revertOf, startAnvil, type Anvil } from '../support/anvil.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const EPOCH_SECONDS = 3600;

let anvil: Anvil;
let admin: Anvil['accounts'][number];
let oracle: Anvil['accounts'][number];
let verifier: Anvil['accounts'][number];
let agent: Anvil['accounts'][number];
let stranger: Anvil['accounts'][number];
let nodes: Anvil['accounts'][number][];

beforeAll(async () => {
  anvil = await startAnvil();
  [admin, oracle, verifier, agent, stranger, ...nodes] = anvil.accounts as Anvil['accounts'][number][];
});
afterAll(() => anvil?.stop());

async function deploy(epochDurationSeconds = EPOCH_SECONDS): Promise<DeployedContracts> {
  return deployContracts(anvil.clientsFor(admin), { admin: admin.address, oracle: oracle.address, epochDurationSeconds });
}

const registry = (address: Address, as = admin) => agentRegistryAt(anvil.clientsFor(as), address);
const pool = (address: Address, as = admin) => rewardPoolAt(anvil.clientsFor(as), address);

async function mined(hash: Promise<Hash>) {
  return confirmTransaction(anvil.publicClient, await hash, 'test transaction');
}

function eventsOf<const TAbi extends Abi>(abi: TAbi, receipt: { logs: Parameters<typeof parseEventLogs>[0]['logs'] }) {
  return parseEventLogs({ abi, logs: receipt.logs }).map((log) => ({ eventName: log.eventName, args: log.args as Record<string, unknown> }));
}

async function timestampOf(receipt: { blockNumber: bigint }): Promise<bigint> {
  return (await anvil.publicClient.getBlock({ blockNumber: receipt.blockNumber })).timestamp;
}

/** Wei an account spent on gas in one transaction. */
const gasCost = (receipt: { gasUsed: bigint; effectiveGasPrice: bigint }) => receipt.gasUsed * receipt.effectiveGasPrice;

describe('anvil', () => {
  it('a missing binary fails saying so', async () => {
    const saved = process.env.COROLLA_TEST_ANVIL;
    process.env.COROLLA_TEST_ANVIL = '/nonexistent/anvil';
    try {
      await expect(startAnvil()).rejects.toThrow(/anvil not found \(\/nonexistent\/anvil\)/);
    } finally {
      if (saved === undefined) delete process.env.COROLLA_TEST_ANVIL;
      else process.env.COROLLA_TEST_ANVIL = saved;
    }
  });
});

describe('artifacts', () => {
  it('the committed ABIs and bytecode are what solc compiles from contracts/ now, without warnings of ours', () => {
    const { files, warnings } = buildArtifacts();
    expect([...files.keys()].sort()).toEqual(['src/chain/artifacts/AgentRegistry.json', 'src/chain/artifacts/RewardPool.json', 'src/chain/artifacts/abis.ts']);
    for (const [file, content] of files) expect(fs.readFileSync(path.join(ROOT, file), 'utf8'), `${file} is stale: run npm run contracts:compile`).toBe(content);
    expect(warnings.filter((w) => w.includes('--> contracts/'))).toEqual([]);
  });
});

describe('AgentRegistry', () => {
  let address: Address;
  beforeAll(async () => {
    ({ agentRegistry: address } = await deploy());
  });

  it('gives the admin DEFAULT_ADMIN_ROLE and ADMIN_ROLE, and nobody else a role', async () => {
    const read = registry(address).read;
    expect(await read.hasRole([ADMIN_ROLE, admin.address])).toBe(true);
    expect(await read.hasRole(['0x' + '00'.repeat(32) as Hex, admin.address])).toBe(true);
    expect(await read.hasRole([ADMIN_ROLE, agent.address])).toBe(false);
    expect(await read.hasRole([VERIFIER_ROLE, verifier.address])).toBe(false);
  });

  it('registers msg.sender as active, with its name, metadata and time, and says so in events', async () => {
    const metadata = JSON.stringify({ peerId: '12D3KooWAgent', models: ['stories260K'] });
    expect(await registry(address).read.isRegistered([agent.address])).toBe(false);
    const receipt = await mined(registry(address, agent).write.register(['agent-one', metadata]));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([
      { eventName: 'AgentRegistered', args: { agent: agent.address, name: 'agent-one', metadata } },
      { eventName: 'AgentActivated', args: { agent: agent.address, by: agent.address } },
    ]);
    const read = registry(address).read;
    expect(await read.isRegistered([agent.address])).toBe(true);
    expect(await read.isActive([agent.address])).toBe(true);
    expect(await read.getAgent([agent.address])).toEqual({ name: 'agent-one', metadata, nodeId: '', registeredAt: await timestampOf(receipt), active: true, slashed: false });
  });

  it('refuses a second registration, an empty name, and questions about unknown agents', async () => {
    expect(await revertOf(registry(address, agent).write.register(['again', '{}']))).toEqual({ name: 'AlreadyRegistered', args: [agent.address] });
    expect(await revertOf(registry(address, stranger).write.register(['', '{}']))).toEqual({ name: 'EmptyName', args: [] });
    expect(await registry(address).read.isActive([stranger.address])).toBe(false);
    expect(await revertOf(registry(address).read.getAgent([stranger.address]))).toEqual({ name: 'NotRegistered', args: [stranger.address] });
  });

  it('stores the node id the agent sets (only a registered one)', async () => {
    const receipt = await mined(registry(address, agent).write.setNodeId(['12D3KooWAgent']));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'NodeIdSet', args: { agent: agent.address, nodeId: '12D3KooWAgent' } }]);
    expect((await registry(address).read.getAgent([agent.address])).nodeId).toBe('12D3KooWAgent');
    expect(await revertOf(registry(address, stranger).write.setNodeId(['12D3KooWStranger']))).toEqual({ name: 'NotRegistered', args: [stranger.address] });
  });

  it('is deactivated and activated by the agent itself or an admin, never by anyone else', async () => {
    const read = registry(address).read;
    let receipt = await mined(registry(address, agent).write.deactivate([agent.address]));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'AgentDeactivated', args: { agent: agent.address, by: agent.address } }]);
    expect(await read.isActive([agent.address])).toBe(false);
    expect(await read.isRegistered([agent.address])).toBe(true);

    expect(await revertOf(registry(address, stranger).write.activate([agent.address]))).toEqual({ name: 'NotAgentOrAdmin', args: [stranger.address, agent.address] });
    receipt = await mined(registry(address, agent).write.activate([agent.address]));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'AgentActivated', args: { agent: agent.address, by: agent.address } }]);
    expect(await read.isActive([agent.address])).toBe(true);

    expect(await revertOf(registry(address, stranger).write.deactivate([agent.address]))).toEqual({ name: 'NotAgentOrAdmin', args: [stranger.address, agent.address] });
    receipt = await mined(registry(address, admin).write.deactivate([agent.address]));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'AgentDeactivated', args: { agent: agent.address, by: admin.address } }]);
    expect(await read.isActive([agent.address])).toBe(false);
    receipt = await mined(registry(address, admin).write.activate([agent.address]));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'AgentActivated', args: { agent: agent.address, by: admin.address } }]);
    expect(await read.isActive([agent.address])).toBe(true);

    expect(await revertOf(registry(address, admin).write.activate([stranger.address]))).toEqual({ name: 'NotRegistered', args: [stranger.address] });
    expect(await revertOf(registry(address, admin).write.deactivate([stranger.address]))).toEqual({ name: 'NotRegistered', args: [stranger.address] });
  });

  it('is slashed by an admin or a verifier, never by anyone else; a slashed agent cannot reactivate itself, an admin reinstates it', async () => {
    const read = registry(address).read;
    expect(await revertOf(registry(address, verifier).write.slash([agent.address, 'wrong hidden states']))).toEqual({ name: 'NotAdminOrVerifier', args: [verifier.address] });
    expect(await revertOf(registry(address, agent).write.slash([agent.address, 'self']))).toEqual({ name: 'NotAdminOrVerifier', args: [agent.address] });
    // only DEFAULT_ADMIN_ROLE grants roles
    expect(await revertOf(registry(address, stranger).write.grantRole([VERIFIER_ROLE, stranger.address]))).toMatchObject({ name: 'AccessControlUnauthorizedAccount' });
    await mined(registry(address, admin).write.grantRole([VERIFIER_ROLE, verifier.address]));

    let receipt = await mined(registry(address, verifier).write.slash([agent.address, 'wrong hidden states at block 3']));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'AgentSlashed', args: { agent: agent.address, by: verifier.address, reason: 'wrong hidden states at block 3' } }]);
    expect(await read.isActive([agent.address])).toBe(false);
    expect(await read.getAgent([agent.address])).toMatchObject({ active: false, slashed: true });
    expect(await revertOf(registry(address, agent).write.activate([agent.address]))).toEqual({ name: 'AgentIsSlashed', args: [agent.address] });

    receipt = await mined(registry(address, admin).write.activate([agent.address]));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'AgentActivated', args: { agent: agent.address, by: admin.address } }]);
    expect(await read.getAgent([agent.address])).toMatchObject({ active: true, slashed: false });

    receipt = await mined(registry(address, admin).write.slash([agent.address, 'skipped blocks']));
    expect(eventsOf(agentRegistryAbi, receipt)).toEqual([{ eventName: 'AgentSlashed', args: { agent: agent.address, by: admin.address, reason: 'skipped blocks' } }]);
    expect(await read.isActive([agent.address])).toBe(false);
    expect(await revertOf(registry(address, admin).write.slash([stranger.address, 'unknown']))).toEqual({ name: 'NotRegistered', args: [stranger.address] });
  });
});

describe('RewardPool', () => {
  let address: Address;
  let genesis: bigint;
  beforeAll(async () => {
    ({ rewardPool: address } = await deploy());
    genesis = await pool(address).read.genesis();
  });

  /** Moves the chain into epoch `epoch` (a few seconds past its start). */
  async function enterEpoch(epoch: bigint): Promise<void> {
    const now = (await anvil.publicClient.getBlock()).timestamp;
    const target = genesis + epoch * BigInt(EPOCH_SECONDS) + 5n;
    if (target > now) await anvil.advanceTime(Number(target - now));
    expect(await pool(address).read.getCurrentEpoch()).toBe(epoch);
  }

  const leavesFor = (epoch: bigint, amounts: bigint[]): RewardLeaf[] =>
    amounts.map((amount, i) => ({ account: nodes[i]!.address, epoch, amount, contribution: 1000n * BigInt(i + 1) }));

  it('refuses an epoch duration of zero, and gives the roles as asked', async () => {
    await expect(deploy(0)).rejects.toThrow(ChainError);
    const read = pool(address).read;
    expect(await read.epochDuration()).toBe(BigInt(EPOCH_SECONDS));
    expect(await read.hasRole([ORACLE_ROLE, oracle.address])).toBe(true);
    expect(await read.hasRole([ORACLE_ROLE, admin.address])).toBe(false);
    expect(await read.hasRole([ADMIN_ROLE, admin.address])).toBe(true);
  });

  it('counts epochs from deployment as the chain clock advances', async () => {
    expect(await pool(address).read.getCurrentEpoch()).toBe(0n);
    await anvil.advanceTime(EPOCH_SECONDS - 60);
    expect(await pool(address).read.getCurrentEpoch()).toBe(0n);
    await anvil.advanceTime(120);
    expect(await pool(address).read.getCurrentEpoch()).toBe(1n);
    await enterEpoch(3n);
  });

  it('adds funding to an epoch budget (not zero, not a reported epoch)', async () => {
    let receipt = await mined(pool(address, stranger).write.fundEpoch([3n], { value: parseEther('1') }));
    expect(eventsOf(rewardPoolAbi, receipt)).toEqual([{ eventName: 'EpochFunded', args: { epoch: 3n, funder: stranger.address, amount: parseEther('1'), budget: parseEther('1') } }]);
    receipt = await mined(pool(address, admin).write.fundEpoch([3n], { value: parseEther('2') }));
    expect(eventsOf(rewardPoolAbi, receipt)).toEqual([{ eventName: 'EpochFunded', args: { epoch: 3n, funder: admin.address, amount: parseEther('2'), budget: parseEther('3') } }]);
    expect((await pool(address).read.getEpoch([3n])).budget).toBe(parseEther('3'));
    expect(await anvil.publicClient.getBalance({ address })).toBe(parseEther('3'));
    expect(await revertOf(pool(address, admin).write.fundEpoch([3n], { value: 0n }))).toEqual({ name: 'ZeroFunding', args: [] });
  });

  it('takes an epoch report only from the oracle, only once, only for an ended epoch, only within its budget', async () => {
    const tree = new RewardTree(3n, leavesFor(3n, [parseEther('1'), parseEther('0.5'), parseEther('1.25')]));
    const report = (as: typeof admin, epoch: bigint, totalRewards: bigint) => pool(address, as).write.reportEpoch([epoch, tree.root, totalRewards, tree.totalContribution]);

    expect(await revertOf(report(oracle, 3n, tree.totalRewards))).toEqual({ name: 'EpochNotEnded', args: [3n, 3n] });
    expect(await revertOf(report(oracle, 4n, tree.totalRewards))).toEqual({ name: 'EpochNotEnded', args: [4n, 3n] });
    await enterEpoch(4n);
    expect(await revertOf(report(admin, 3n, tree.totalRewards))).toEqual({ name: 'AccessControlUnauthorizedAccount', args: [admin.address, ORACLE_ROLE] });
    expect(await revertOf(report(stranger, 3n, tree.totalRewards))).toEqual({ name: 'AccessControlUnauthorizedAccount', args: [stranger.address, ORACLE_ROLE] });
    expect(await revertOf(report(oracle, 3n, parseEther('3') + 1n))).toEqual({ name: 'RewardsExceedBudget', args: [3n, parseEther('3') + 1n, parseEther('3')] });

    const receipt = await mined(report(oracle, 3n, tree.totalRewards));
    const rest = parseEther('3') - tree.totalRewards;
    expect(eventsOf(rewardPoolAbi, receipt)).toEqual([
      { eventName: 'EpochReported', args: { epoch: 3n, merkleRoot: tree.root, totalRewards: tree.totalRewards, totalContribution: tree.totalContribution, rolledOver: rest, rolledOverTo: 4n } },
    ]);
    expect(await pool(address).read.getEpoch([3n])).toEqual({ budget: parseEther('3'), totalRewards: tree.totalRewards, totalContribution: 6000n, claimed: 0n, merkleRoot: tree.root, reported: true });
    // the unallocated rest of the budget now funds the current epoch
    expect((await pool(address).read.getEpoch([4n])).budget).toBe(rest);

    expect(await revertOf(report(oracle, 3n, tree.totalRewards))).toEqual({ name: 'EpochAlreadyReported', args: [3n] });
    expect(await revertOf(pool(address, admin).write.fundEpoch([3n], { value: 1n }))).toEqual({ name: 'EpochAlreadyReported', args: [3n] });
  });

  it('pays each leaf exactly once; wrong amounts, contributions, proofs and accounts are refused', async () => {
    const tree = new RewardTree(3n, leavesFor(3n, [parseEther('1'), parseEther('0.5'), parseEther('1.25')]));
    const [first, second] = tree.leaves as [RewardLeaf, RewardLeaf, RewardLeaf];
    const claimer = nodes[0]!;
    const proof = tree.proof(first.account);
    const read = pool(address).read;

    expect(await read.getPendingReward([first.account, 3n, first.amount, first.contribution, proof])).toBe(first.amount);
    expect(await read.getPendingReward([first.account, 3n, first.amount + 1n, first.contribution, proof])).toBe(0n);
    expect(await read.getPendingReward([first.account, 3n, first.amount, first.contribution, tree.proof(second.account)])).toBe(0n);
    expect(await read.getPendingReward([first.account, 2n, first.amount, first.contribution, proof])).toBe(0n);
    expect(await read.getContribution([first.account, 3n])).toBe(0n);
    expect(await read.hasClaimed([first.account, 3n])).toBe(false);

    const claim = (as: typeof admin, amount: bigint, contribution: bigint, leafProof: Hex[], epoch = 3n) =>
      pool(address, as).write.claimReward([epoch, amount, contribution, leafProof]);
    expect(await revertOf(claim(claimer, first.amount + 1n, first.contribution, proof))).toEqual({ name: 'InvalidProof', args: [3n, claimer.address] });
    expect(await revertOf(claim(claimer, first.amount, first.contribution + 1n, proof))).toEqual({ name: 'InvalidProof', args: [3n, claimer.address] });
    expect(await revertOf(claim(claimer, first.amount, first.contribution, tree.proof(second.account)))).toEqual({ name: 'InvalidProof', args: [3n, claimer.address] });
    expect(await revertOf(claim(claimer, first.amount, first.contribution, proof.slice(1)))).toEqual({ name: 'InvalidProof', args: [3n, claimer.address] });
    // someone else presenting a node's leaf and proof: the leaf is bound to msg.sender
    expect(await revertOf(claim(stranger, first.amount, first.contribution, proof))).toEqual({ name: 'InvalidProof', args: [3n, stranger.address] });
    expect(await revertOf(claim(claimer, first.amount, first.contribution, proof, 4n))).toEqual({ name: 'EpochNotReported', args: [4n] });

    const before = await anvil.publicClient.getBalance({ address: claimer.address });
    const poolBefore = await anvil.publicClient.getBalance({ address });
    const receipt = await mined(claim(claimer, first.amount, first.contribution, proof));
    expect(eventsOf(rewardPoolAbi, receipt)).toEqual([{ eventName: 'RewardClaimed', args: { epoch: 3n, account: claimer.address, amount: first.amount, contribution: first.contribution } }]);
    expect(await anvil.publicClient.getBalance({ address: claimer.address })).toBe(before + first.amount - gasCost(receipt));
    expect(await anvil.publicClient.getBalance({ address })).toBe(poolBefore - first.amount);
    expect(await read.getContribution([first.account, 3n])).toBe(first.contribution);
    expect(await read.hasClaimed([first.account, 3n])).toBe(true);
    expect(await read.getPendingReward([first.account, 3n, first.amount, first.contribution, proof])).toBe(0n);
    expect((await read.getEpoch([3n])).claimed).toBe(first.amount);

    expect(await revertOf(claim(claimer, first.amount, first.contribution, proof))).toEqual({ name: 'AlreadyClaimed', args: [3n, claimer.address] });
    // the others still can
    expect(await read.getPendingReward([second.account, 3n, second.amount, second.contribution, tree.proof(second.account)])).toBe(second.amount);
  });

  it('never pays out more than the reported total, even if the tree holds more; refuses totals and contributions too large to store', async () => {
    await mined(pool(address, admin).write.fundEpoch([4n], { value: parseEther('1') }));
    await enterEpoch(5n);
    const huge: RewardLeaf = { account: nodes[2]!.address, epoch: 4n, amount: 1n, contribution: 2n ** 248n };
    const tree = new RewardTree(4n, [...leavesFor(4n, [parseEther('0.6'), parseEther('0.6')]), huge]);
    expect(await revertOf(pool(address, oracle).write.reportEpoch([4n, tree.root, parseEther('1'), 2n ** 120n]))).toEqual({
      name: 'SafeCastOverflowedUintDowncast',
      args: [120, 2n ** 120n],
    });
    await mined(pool(address, oracle).write.reportEpoch([4n, tree.root, parseEther('1'), 3000n]));
    const [a, b] = tree.leaves as [RewardLeaf, RewardLeaf];
    expect(await revertOf(pool(address, nodes[2]).write.claimReward([4n, huge.amount, huge.contribution, tree.proof(huge.account)]))).toEqual({
      name: 'ContributionTooLarge',
      args: [2n ** 248n],
    });
    await mined(pool(address, nodes[0]).write.claimReward([4n, a.amount, a.contribution, tree.proof(a.account)]));
    expect(await pool(address).read.getPendingReward([b.account, 4n, b.amount, b.contribution, tree.proof(b.account)])).toBe(0n);
    expect(await revertOf(pool(address, nodes[1]).write.claimReward([4n, b.amount, b.contribution, tree.proof(b.account)]))).toEqual({
      name: 'ClaimsExceedRewards',
      args: [4n, parseEther('1.2'), parseEther('1')],
    });
  });

  it('stops claims while paused (pause and unpause by an admin only)', async () => {
    const tree = new RewardTree(3n, leavesFor(3n, [parseEther('1'), parseEther('0.5'), parseEther('1.25')]));
    const leaf = tree.leaves[1]!;
    const claim = () => pool(address, nodes[1]).write.claimReward([3n, leaf.amount, leaf.contribution, tree.proof(leaf.account)]);
    expect(await revertOf(pool(address, oracle).write.pause())).toEqual({ name: 'AccessControlUnauthorizedAccount', args: [oracle.address, ADMIN_ROLE] });
    let receipt = await mined(pool(address, admin).write.pause());
    expect(eventsOf(rewardPoolAbi, receipt)).toEqual([{ eventName: 'Paused', args: { account: admin.address } }]);
    expect(await pool(address).read.paused()).toBe(true);
    expect(await revertOf(claim())).toEqual({ name: 'EnforcedPause', args: [] });
    expect(await revertOf(pool(address, stranger).write.unpause())).toEqual({ name: 'AccessControlUnauthorizedAccount', args: [stranger.address, ADMIN_ROLE] });
    receipt = await mined(pool(address, admin).write.unpause());
    expect(eventsOf(rewardPoolAbi, receipt)).toEqual([{ eventName: 'Unpaused', args: { account: admin.address } }]);
    receipt = await mined(claim());
    expect(eventsOf(rewardPoolAbi, receipt)[0]).toMatchObject({ eventName: 'RewardClaimed', args: { amount: leaf.amount } });
  });

  it('stops a claimer that re-enters claimReward from its receive()', async () => {
    const source = fs.readFileSync(path.join(import.meta.dirname, 'fixtures/ReentrantClaimer.sol'), 'utf8');
    const attacker = compileSolidity({ 'test/chain/fixtures/ReentrantClaimer.sol': source }).contracts['test/chain/fixtures/ReentrantClaimer.sol']!.ReentrantClaimer!;
    const abi = [...(attacker.abi as Abi), ...rewardPoolAbi.filter((item) => item.type === 'error')] as Abi;
    const { walletClient } = anvil.clientsFor(stranger);
    const deployed = await mined(walletClient.deployContract({ abi, bytecode: attacker.bytecode, args: [address] }));
    const attackerAddress = deployed.contractAddress!;

    await mined(pool(address, admin).write.fundEpoch([5n], { value: parseEther('1') }));
    await enterEpoch(6n);
    const leaf: RewardLeaf = { account: attackerAddress, epoch: 5n, amount: parseEther('0.4'), contribution: 7n };
    const tree = new RewardTree(5n, [leaf, ...leavesFor(5n, [parseEther('0.1')])]);
    await mined(pool(address, oracle).write.reportEpoch([5n, tree.root, tree.totalRewards, tree.totalContribution]));
    const args = (swallow: boolean) => [5n, leaf.amount, leaf.contribution, tree.proof(attackerAddress), swallow] as const;
    const attack = (swallow: boolean) => walletClient.writeContract({ address: attackerAddress, abi, functionName: 'attack', args: args(swallow) });

    // bubbling the inner failure up: the whole claim reverts with the guard's error
    expect(await revertOf(attack(false))).toEqual({ name: 'ReentrancyGuardReentrantCall', args: [] });
    expect(await anvil.publicClient.getBalance({ address: attackerAddress })).toBe(0n);

    // swallowing it: the first claim pays once, the re-entry was refused by the guard
    const poolBefore = await anvil.publicClient.getBalance({ address });
    await mined(attack(true));
    const read = (functionName: string) => anvil.publicClient.readContract({ address: attackerAddress, abi, functionName });
    expect(await read('reentries')).toBe(1n);
    expect(await read('reentryError')).toBe(toFunctionSelector('ReentrancyGuardReentrantCall()'));
    expect(await anvil.publicClient.getBalance({ address: attackerAddress })).toBe(leaf.amount);
    expect(await anvil.publicClient.getBalance({ address })).toBe(poolBefore - leaf.amount);
    expect(await pool(address).read.hasClaimed([attackerAddress, 5n])).toBe(true);
  });

  it('reports an epoch of 1,000 nodes in one cheap transaction; a claim with a 1,000-leaf proof stays cheap', async () => {
    const epoch = 7n;
    const claimer = nodes[2]!;
    const perNode = parseEther('0.001');
    const leaves: RewardLeaf[] = Array.from({ length: 1000 }, (_, i) => ({
      account: i === 0 ? claimer.address : privateKeyToAccount(`0x${(i + 1).toString(16).padStart(64, '0')}`).address,
      epoch,
      amount: perNode + BigInt(i),
      contribution: BigInt(1000 + i),
    }));
    const tree = new RewardTree(epoch, leaves);
    await mined(pool(address, admin).write.fundEpoch([epoch], { value: parseEther('2') }));
    // the steady state: the next epoch is funded ahead, so the rollover adds to a budget already stored
    await mined(pool(address, admin).write.fundEpoch([epoch + 1n], { value: parseEther('1') }));
    await enterEpoch(8n);

    const report = await mined(pool(address, oracle).write.reportEpoch([epoch, tree.root, tree.totalRewards, tree.totalContribution]));
    const proof = tree.proof(claimer.address);
    const claim = await mined(pool(address, claimer).write.claimReward([epoch, leaves[0]!.amount, leaves[0]!.contribution, proof]));
    console.log(`gas: reportEpoch for 1,000 nodes ${report.gasUsed}; claimReward with a ${proof.length}-hash proof ${claim.gasUsed}`);
    expect(proof.length).toBeGreaterThanOrEqual(9);
    expect(report.gasUsed).toBeLessThan(150_000n);
    expect(claim.gasUsed).toBeLessThan(150_000n);
  });
});
