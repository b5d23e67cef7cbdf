/**
 * The reward tree in TypeScript against OpenZeppelin's MerkleProof in the RewardPool on anvil: every leaf of trees of
 * awkward sizes proves on chain; order of leaves does not matter; tampering breaks proofs.
 */
import { encodeAbiParameters, getAddress, keccak256, parseEther, type Address } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confirmTransaction, deployContracts, rewardPoolAt } from '../../src/chain/contracts.js';
import { processRewardProof, rewardLeafHash, RewardTree, verifyRewardProof, type RewardLeaf } from '../../src/chain/merkle.js';
import { startAnvil, type Anvil } from '../support/anvil.js';

const accountAt = (i: number): Address => privateKeyToAccount(`0x${(i + 1).toString(16).padStart(64, '0')}`).address;

function leaves(epoch: bigint, count: number): RewardLeaf[] {
  return Array.from({ length: count }, (_, i) => ({ account: accountAt(i), epoch, amount: 10n ** 15n * BigInt(i + 1), contribution: BigInt(7 * i + 3) }));
}

describe('RewardTree (TypeScript)', () => {
  it('hashes a leaf as keccak256(keccak256(abi.encode(account, epoch, amount, contribution)))', () => {
    const leaf = leaves(4n, 1)[0]!;
    const encoded = encodeAbiParameters([{ type: 'address' }, { type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }], [leaf.account, 4n, leaf.amount, leaf.contribution]);
    expect(rewardLeafHash(leaf)).toBe(keccak256(keccak256(encoded)));
    expect(encoded.length).toBe(2 + 4 * 64);
  });

  it('has the leaf itself as the root of a one-leaf tree, with an empty proof', () => {
    const [leaf] = leaves(1n, 1) as [RewardLeaf];
    const tree = new RewardTree(1n, [leaf]);
    expect(tree.root).toBe(rewardLeafHash(leaf));
    expect(tree.proof(leaf.account)).toEqual([]);
  });

  it('proves every leaf, with about log2(n) hashes, whatever order the leaves come in', () => {
    for (const count of [2, 3, 5, 8, 13, 100]) {
      const list = leaves(2n, count);
      const tree = new RewardTree(2n, list);
      expect(new RewardTree(2n, [...list].reverse()).root).toBe(tree.root);
      for (const leaf of list) {
        const proof = tree.proof(leaf.account);
        expect(proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(count)));
        expect(verifyRewardProof(tree.root, leaf, proof)).toBe(true);
      }
    }
  });

  it('rejects a tampered leaf, a foreign proof, a shortened proof', () => {
    const list = leaves(3n, 9);
    const tree = new RewardTree(3n, list);
    const [a, b] = list as [RewardLeaf, RewardLeaf];
    expect(verifyRewardProof(tree.root, { ...a, amount: a.amount + 1n }, tree.proof(a.account))).toBe(false);
    expect(verifyRewardProof(tree.root, { ...a, contribution: a.contribution + 1n }, tree.proof(a.account))).toBe(false);
    expect(verifyRewardProof(tree.root, { ...a, epoch: 4n }, tree.proof(a.account))).toBe(false);
    expect(verifyRewardProof(tree.root, a, tree.proof(b.account))).toBe(false);
    expect(verifyRewardProof(tree.root, a, tree.proof(a.account).slice(1))).toBe(false);
    expect(processRewardProof(a, tree.proof(a.account))).toBe(tree.root);
  });

  it('sums the totals, finds accounts whatever their case, refuses empty trees, foreign epochs and duplicate accounts', () => {
    const list = leaves(5n, 4);
    const tree = new RewardTree(5n, list);
    expect(tree.totalRewards).toBe(10n ** 15n * 10n);
    expect(tree.totalContribution).toBe(3n + 10n + 17n + 24n);
    expect(tree.has(list[0]!.account.toLowerCase() as Address)).toBe(true);
    expect(tree.proof(list[0]!.account.toLowerCase() as Address)).toEqual(tree.proof(getAddress(list[0]!.account)));
    expect(tree.has(accountAt(99))).toBe(false);
    expect(() => tree.proof(accountAt(99))).toThrow(/no leaf/);
    expect(() => new RewardTree(5n, [])).toThrow(/at least one leaf/);
    expect(() => new RewardTree(6n, list)).toThrow(/epoch 5, not 6/);
    expect(() => new RewardTree(5n, [...list, { ...list[1]!, amount: 1n }])).toThrow(/more than one leaf/);
  });
});

describe('RewardTree against the RewardPool (OpenZeppelin MerkleProof) on anvil', () => {
  const EPOCH_SECONDS = 60;
  const SIZES = [1, 2, 3, 4, 5, 7, 8, 13];
  let anvil: Anvil;
  let pool: ReturnType<typeof rewardPoolAt>;
  const trees: RewardTree[] = [];

  beforeAll(async () => {
    anvil = await startAnvil();
    const [admin, oracle] = anvil.accounts as [Anvil['accounts'][number], Anvil['accounts'][number]];
    const { rewardPool } = await deployContracts(anvil.clientsFor(admin), { admin: admin.address, oracle: oracle.address, epochDurationSeconds: EPOCH_SECONDS });
    const funder = rewardPoolAt(anvil.clientsFor(admin), rewardPool);
    const reporter = rewardPoolAt(anvil.clientsFor(oracle), rewardPool);
    pool = funder;
    for (const [epoch, size] of SIZES.entries()) {
      const tree = new RewardTree(BigInt(epoch), leaves(BigInt(epoch), size));
      trees.push(tree);
      await confirmTransaction(anvil.publicClient, await funder.write.fundEpoch([BigInt(epoch)], { value: parseEther('1') }), 'fund');
    }
    await anvil.advanceTime(EPOCH_SECONDS * SIZES.length);
    for (const tree of trees) {
      await confirmTransaction(anvil.publicClient, await reporter.write.reportEpoch([tree.epoch, tree.root, tree.totalRewards, tree.totalContribution]), 'report');
    }
  });
  afterAll(() => anvil?.stop());

  it('every leaf of every tree proves on chain (getPendingReward pays its amount); a tampered one does not', async () => {
    for (const tree of trees) {
      const results = await Promise.all(
        tree.leaves.map(async (leaf) => {
          const proof = tree.proof(leaf.account);
          const pending = await pool.read.getPendingReward([leaf.account, tree.epoch, leaf.amount, leaf.contribution, proof]);
          const tampered = await pool.read.getPendingReward([leaf.account, tree.epoch, leaf.amount, leaf.contribution + 1n, proof]);
          return { pending, tampered, expected: leaf.amount };
        }),
      );
      for (const { pending, tampered, expected } of results) {
        expect(pending).toBe(expected);
        expect(tampered).toBe(0n);
      }
    }
  });
});
