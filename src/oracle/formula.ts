/**
 * The one reward formula (docs/oracle.md), in integers so every oracle computes the same amounts:
 *   blockTokens(node)  = Σ over its receipts of (promptTokens + generatedTokens + replayedTokens) × (blockEnd − blockStart)
 *   weight(node)       = 0.5 + 0.5 · min(1, uptime / epochSeconds)   (in ppm; 0.5 without usable metrics)
 *   contribution(node) = floor(blockTokens × weightPpm / 10^6)
 *   reward(node)       = floor(budget × contribution / Σ contributions);  dust = budget − Σ rewards
 */
import type { Address } from 'viem';

export const PPM = 1_000_000n;
/** The weight's floor: receipted work always counts at least half, proven uptime adds the other half. */
export const BASE_WEIGHT_PPM = 500_000n;

export interface ReceiptWork {
  readonly blockStart: number;
  readonly blockEnd: number;
  readonly promptTokens: bigint;
  readonly generatedTokens: bigint;
  readonly replayedTokens: bigint;
}

export function receiptBlockTokens(work: ReceiptWork): bigint {
  return (work.promptTokens + work.generatedTokens + work.replayedTokens) * BigInt(work.blockEnd - work.blockStart);
}

/** The uptime weight in ppm; `uptimeSeconds` undefined (no usable metrics) gives the floor. */
export function uptimeWeightPpm(uptimeSeconds: bigint | undefined, epochSeconds: bigint): bigint {
  if (uptimeSeconds === undefined || epochSeconds <= 0n) return BASE_WEIGHT_PPM;
  const capped = uptimeSeconds < epochSeconds ? uptimeSeconds : epochSeconds;
  return BASE_WEIGHT_PPM + ((PPM - BASE_WEIGHT_PPM) * capped) / epochSeconds;
}

export function contribution(blockTokens: bigint, weightPpm: bigint): bigint {
  return (blockTokens * weightPpm) / PPM;
}

export interface Allocation {
  readonly rewards: ReadonlyMap<Address, bigint>;
  readonly totalContribution: bigint;
  readonly totalRewards: bigint;
  readonly dust: bigint;
}

/** Splits `budget` pro rata by contribution, rounding each share down; nothing is paid when nobody contributed. */
export function allocate(budget: bigint, contributions: ReadonlyMap<Address, bigint>): Allocation {
  let totalContribution = 0n;
  for (const value of contributions.values()) totalContribution += value;
  const rewards = new Map<Address, bigint>();
  let totalRewards = 0n;
  for (const [address, value] of contributions) {
    const amount = totalContribution === 0n ? 0n : (budget * value) / totalContribution;
    rewards.set(address, amount);
    totalRewards += amount;
  }
  return { rewards, totalContribution, totalRewards, dust: budget - totalRewards };
}
