/**
 * The reward tree, as OpenZeppelin's MerkleProof verifies it: leaf = keccak256(bytes.concat(keccak256(abi.encode(
 * account, epoch, amount, contribution)))) (hashed twice so a leaf can never pass for an inner node), and each inner
 * node hashes its two children in sorted order, so a proof is just the siblings, bottom up.
 */
import { concat, encodeAbiParameters, keccak256, type Address, type Hex } from 'viem';

export const EMPTY_ROOT: Hex = `0x${'00'.repeat(32)}`;

export function rewardLeaf(account: Address, epoch: bigint, amount: bigint, contribution: bigint): Hex {
  const encoded = encodeAbiParameters([{ type: 'address' }, { type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }], [account, epoch, amount, contribution]);
  return keccak256(keccak256(encoded));
}

export function hashPair(a: Hex, b: Hex): Hex {
  return BigInt(a) < BigInt(b) ? keccak256(concat([a, b])) : keccak256(concat([b, a]));
}

export interface MerkleTree {
  readonly root: Hex;
  /** The proof of leaves[i]. */
  proof(index: number): Hex[];
}

/** A tree over `leaves` (in the order given); a level's odd last node moves up unhashed. */
export function buildMerkleTree(leaves: readonly Hex[]): MerkleTree {
  if (leaves.length === 0) return { root: EMPTY_ROOT, proof: () => [] };
  const levels: Hex[][] = [[...leaves]];
  while (levels[levels.length - 1]!.length > 1) {
    const below = levels[levels.length - 1]!;
    const level: Hex[] = [];
    for (let i = 0; i < below.length; i += 2) level.push(i + 1 < below.length ? hashPair(below[i]!, below[i + 1]!) : below[i]!);
    levels.push(level);
  }
  return {
    root: levels[levels.length - 1]![0]!,
    proof(index) {
      const proof: Hex[] = [];
      for (let level = 0, i = index; level < levels.length - 1; level++, i >>= 1) {
        const sibling = levels[level]![i ^ 1];
        if (sibling !== undefined) proof.push(sibling);
      }
      return proof;
    },
  };
}

/** MerkleProof.verify, for tests and for checking a stored proof. */
export function verifyProof(proof: readonly Hex[], root: Hex, leaf: Hex): boolean {
  return proof.reduce((node, sibling) => hashPair(node, sibling), leaf) === root;
}
