/**
 * The per-epoch reward tree the oracle reports to the RewardPool as one root, and the proofs servers claim with.
 * It matches OpenZeppelin's MerkleProof (and its StandardMerkleTree layout): each leaf is
 * keccak256(bytes.concat(keccak256(abi.encode(address account, uint256 epoch, uint256 amount, uint256 contribution))))
 * (the double hash keeps a leaf from passing as an inner node), pairs are hashed sorted, and the leaves are sorted by
 * hash, so the root does not depend on the order the oracle lists its nodes in.
 */
import type { Address, Hex } from 'viem';
import { concat, encodeAbiParameters, getAddress, keccak256 } from 'viem/utils';

export interface RewardLeaf {
  readonly account: Address;
  readonly epoch: bigint;
  /** Wei paid to `account` for the epoch. */
  readonly amount: bigint;
  /** The work the oracle counted for it (its unit is the oracle's; the contract only records it). */
  readonly contribution: bigint;
}

const LEAF_PARAMETERS = [{ type: 'address' }, { type: 'uint256' }, { type: 'uint256' }, { type: 'uint256' }] as const;

export function rewardLeafHash(leaf: RewardLeaf): Hex {
  return keccak256(keccak256(encodeAbiParameters(LEAF_PARAMETERS, [leaf.account, leaf.epoch, leaf.amount, leaf.contribution])));
}

function hashPair(a: Hex, b: Hex): Hex {
  return keccak256(a.toLowerCase() < b.toLowerCase() ? concat([a, b]) : concat([b, a]));
}

/** The root that `proof` leads to from `leaf` (OpenZeppelin's processProof). */
export function processRewardProof(leaf: RewardLeaf, proof: readonly Hex[]): Hex {
  return proof.reduce<Hex>((node, sibling) => hashPair(node, sibling), rewardLeafHash(leaf));
}

export function verifyRewardProof(root: Hex, leaf: RewardLeaf, proof: readonly Hex[]): boolean {
  return processRewardProof(leaf, proof).toLowerCase() === root.toLowerCase();
}

/** One epoch's rewards as a Merkle tree: a root to report, a proof per account to claim with. */
export class RewardTree {
  readonly epoch: bigint;
  readonly leaves: readonly RewardLeaf[];
  /** Nodes in an array, root first: node i has children 2i+1 and 2i+2; the leaves fill the end. */
  readonly #nodes: Hex[];
  /** Checksummed account → its index in #nodes. */
  readonly #nodeIndex = new Map<Address, number>();

  /** At least one leaf, all of `epoch`, one per account (a second leaf could never be claimed). */
  constructor(epoch: bigint, leaves: readonly RewardLeaf[]) {
    if (leaves.length === 0) throw new RangeError('a reward tree needs at least one leaf');
    this.epoch = epoch;
    this.leaves = leaves;
    const hashed = leaves.map((leaf) => {
      if (leaf.epoch !== epoch) throw new RangeError(`leaf of ${leaf.account} is for epoch ${leaf.epoch}, not ${epoch}`);
      return { account: getAddress(leaf.account), hash: rewardLeafHash(leaf) };
    });
    hashed.sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
    const count = hashed.length;
    this.#nodes = new Array<Hex>(2 * count - 1);
    hashed.forEach(({ account, hash }, i) => {
      const index = this.#nodes.length - 1 - i;
      if (this.#nodeIndex.has(account)) throw new RangeError(`${account} has more than one leaf in epoch ${epoch}`);
      this.#nodeIndex.set(account, index);
      this.#nodes[index] = hash;
    });
    for (let i = this.#nodes.length - 1 - count; i >= 0; i--) this.#nodes[i] = hashPair(this.#nodes[2 * i + 1]!, this.#nodes[2 * i + 2]!);
  }

  get root(): Hex {
    return this.#nodes[0]!;
  }

  /** Σ amounts: what the oracle reports as the epoch's total rewards. */
  get totalRewards(): bigint {
    return this.leaves.reduce((sum, leaf) => sum + leaf.amount, 0n);
  }

  get totalContribution(): bigint {
    return this.leaves.reduce((sum, leaf) => sum + leaf.contribution, 0n);
  }

  has(account: Address): boolean {
    return this.#nodeIndex.has(getAddress(account));
  }

  /** The sibling hashes from `account`'s leaf up to the root (throws if it has no leaf). */
  proof(account: Address): Hex[] {
    let index = this.#nodeIndex.get(getAddress(account));
    if (index === undefined) throw new RangeError(`${account} has no leaf in epoch ${this.epoch}`);
    const proof: Hex[] = [];
    while (index > 0) {
      proof.push(this.#nodes[index % 2 === 1 ? index + 1 : index - 1]!);
      index = Math.floor((index - 1) / 2);
    }
    return proof;
  }
}
