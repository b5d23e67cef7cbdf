/**
 * The oracle's view of the chain (two small interfaces, so the contracts' real ABIs can replace chain.ts's fragments
 * without touching the service) and the records it keeps and reports.
 */
import type { Address, Hex } from 'viem';

/** AgentRegistry, as far as the oracle reads it. */
export interface RegistryReader {
  /** Whether `server` is registered, active and not slashed. */
  isActive(server: Address): Promise<boolean>;
}

/** RewardPool, as far as the oracle writes it (it holds ORACLE_ROLE). */
export interface RewardPoolWriter {
  /** Reports a closed epoch's Merkle root and totals; resolves with the transaction hash once it is mined. */
  reportEpoch(epoch: bigint, root: Hex, totalRewards: bigint, totalContribution: bigint): Promise<Hex>;
  /** The native-currency budget funded for `epoch`. */
  epochBudget(epoch: bigint): Promise<bigint>;
  /** The root on chain and the transaction that reported it, if `epoch` is reported already (a resumed close checks first). */
  reportedEpoch(epoch: bigint): Promise<{ readonly root: Hex; readonly txHash: Hex } | undefined>;
}

/** The RewardPool's epoch schedule, read from the contract so the oracle never disagrees with it. */
export interface EpochSchedule {
  readonly genesisMs: number;
  readonly epochDurationMs: number;
}

/** AgentRegistry's slash, for an oracle whose key holds VERIFIER_ROLE. */
export interface RegistrySlasher {
  /** Slashes `server`; resolves with the transaction hash once it is mined. */
  slash(server: Address, reason: string): Promise<Hex>;
}

/** `open` until closing starts; `submitting` once the results are stored (the report may be in flight); `reported` with its transaction. */
export type EpochStatus = 'open' | 'submitting' | 'reported';

/** One node's share of a closed (or, as a preview, an open) epoch. */
export interface NodeReward {
  readonly address: Address;
  readonly receipts: number;
  /** Σ (promptTokens + generatedTokens + replayedTokens) × (blockEnd − blockStart) over its receipts. */
  readonly blockTokens: bigint;
  /** The uptime weight in parts per million (500 000 … 1 000 000). */
  readonly uptimeWeightPpm: bigint;
  /** floor(blockTokens × uptimeWeightPpm / 10^6). */
  readonly contribution: bigint;
  /** floor(budget × contribution / Σ contributions); undefined while the epoch is open. */
  readonly amount?: bigint;
  /** The Merkle proof of (address, epoch, amount, contribution); undefined while the epoch is open. */
  readonly proof?: readonly Hex[];
}

/** Node metrics that claim more tokens than the payers' receipts show for that server in that period: the excess is never paid. */
export interface FlaggedMetrics {
  readonly server: Address;
  readonly periodStart: bigint;
  readonly periodEnd: bigint;
  readonly claimedTokens: bigint;
  readonly receiptedTokens: bigint;
  readonly excess: bigint;
}

/** A second, different signed report under a key that already holds one; the first stays, the second is rejected. */
export interface Conflict {
  readonly kind: 'receipt' | 'metrics';
  readonly signer: Address;
  /** The unique key, e.g. "payer/sessionId/server/blockStart-blockEnd". */
  readonly key: string;
  readonly existingDigest: Hex;
  readonly rejectedDigest: Hex;
  readonly rejectedSignature: Hex;
  readonly at: Date;
}

export interface EpochReport {
  readonly epoch: bigint;
  readonly status: EpochStatus;
  /** Unix ms, [startsAt, endsAt). */
  readonly startsAt: number;
  readonly endsAt: number;
  readonly budget?: bigint;
  readonly totalContribution: bigint;
  readonly totalRewards?: bigint;
  /** budget − Σ rewards: rounding left in the pool. */
  readonly dust?: bigint;
  readonly root?: Hex;
  readonly txHash?: Hex;
  readonly nodes: readonly NodeReward[];
  readonly flagged: readonly FlaggedMetrics[];
  readonly conflicts: readonly Conflict[];
  /** Servers with spot-check evidence in this epoch: their receipts are not counted, so they get nothing. */
  readonly excluded: readonly Address[];
}

/** The answer to one piece of spot-check evidence. */
export interface EvidenceResult {
  readonly status: 'accepted' | 'duplicate';
  readonly epoch: number;
  readonly suspect: Address;
  /** Whether the oracle slashes (it holds VERIFIER_ROLE) or keeps the evidence for the admin. */
  readonly slash: 'pending' | 'not-configured';
}

/** What a node can claim for one reported epoch. */
export interface Claimable {
  readonly epoch: bigint;
  readonly amount: bigint;
  readonly contribution: bigint;
  readonly proof: readonly Hex[];
}

/** The answer to a batch of receipts or metrics. */
export interface BatchResult {
  readonly accepted: number;
  readonly duplicates: number;
  readonly rejected: readonly { readonly index: number; readonly reason: string }[];
}
