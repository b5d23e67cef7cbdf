import { describe, expect, it } from 'vitest';
import { allocate, contribution, receiptBlockTokens, uptimeWeightPpm } from '../../src/oracle/formula.js';

const account = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as const;

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
