import { encodeAbiParameters, keccak256, concat, type Hex } from 'viem';
import { describe, expect, it } from 'vitest';
import { buildMerkleTree, EMPTY_ROOT, rewardLeaf, verifyProof } from '../../src/oracle/merkle.js';
import { allocate, contribution, receiptBlockTokens, uptimeWeightPpm } from '../../src/oracle/formula.js';

const account = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as const;

describe('the reward tree', () => {
  it('hashes a leaf as OpenZeppelin does: keccak256(bytes.concat(keccak256(abi.encode(account, epoch, amount, contribution))))', () => {
    const inner = keccak256(encodeAbiParameters([{ type: 'address' }, { type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }], [account(1), 7n, 100n, 5n]));
    expect(rewardLeaf(account(1), 7n, 100n, 5n)).toBe(keccak256(inner));
    expect(rewardLeaf(account(1), 7n, 100n, 6n)).not.toBe(keccak256(inner));
  });

  it('proves every leaf of trees of 1 to 9 leaves with sorted pairs, and no tampered leaf', () => {
    for (let n = 1; n <= 9; n++) {
      const leaves = Array.from({ length: n }, (_, i) => rewardLeaf(account(i + 1), 1n, BigInt(i * 10), BigInt(i)));
      const tree = buildMerkleTree(leaves);
      leaves.forEach((leaf, i) => expect(verifyProof(tree.proof(i), tree.root, leaf)).toBe(true));
      expect(verifyProof(tree.proof(0), tree.root, rewardLeaf(account(1), 1n, 1n, 0n))).toBe(false);
    }
  });

  it('pairs in sorted order: the root of two leaves does not depend on their order', () => {
    const [a, b] = [rewardLeaf(account(1), 1n, 1n, 1n), rewardLeaf(account(2), 1n, 1n, 1n)];
    const sorted = (BigInt(a) < BigInt(b) ? concat([a, b]) : concat([b, a])) as Hex;
    expect(buildMerkleTree([a, b]).root).toBe(keccak256(sorted));
    expect(buildMerkleTree([b, a]).root).toBe(keccak256(sorted));
    expect(buildMerkleTree([]).root).toBe(EMPTY_ROOT);
  });
});

describe('the formula', () => {
  it('counts tokens × blocks, weights uptime from 0.5 to 1, and splits the budget rounding down with the dust reported', () => {
    expect(receiptBlockTokens({ blockStart: 2, blockEnd: 6, promptTokens: 10n, generatedTokens: 5n, replayedTokens: 1n })).toBe(64n);
    expect(uptimeWeightPpm(undefined, 3600n)).toBe(500_000n);
    expect(uptimeWeightPpm(1800n, 3600n)).toBe(750_000n);
    expect(uptimeWeightPpm(99_999n, 3600n)).toBe(1_000_000n);
    expect(contribution(64n, 750_000n)).toBe(48n);
    const split = allocate(100n, new Map([[account(1), 1n], [account(2), 1n], [account(3), 1n]]));
    expect([...split.rewards.values()]).toEqual([33n, 33n, 33n]);
    expect(split.dust).toBe(1n);
    expect(split.totalRewards + split.dust).toBe(100n);
    expect(allocate(100n, new Map()).dust).toBe(100n);
  });
});
