/** Span choice and rebalancing: pure functions over announced records. */
import { describe, expect, it } from 'vitest';
import { blocksForMemory, blockThroughputs, chooseBestStart, chooseSpan, shouldRebalance, type SpanView } from '../../src/server/span-choice.js';
import { estimateNetworkThroughput, parseNvidiaSmi } from '../../src/server/throughput.js';

const view = (peerId: string, start: number, end: number, throughput: number, state: SpanView['state'] = 'online'): SpanView => ({ peerId, start, end, throughput, state });

describe('span choice', () => {
  it('an empty swarm gives [0, N)', () => {
    expect(chooseSpan([], 5, 3)).toEqual({ start: 0, end: 3 });
    expect(chooseSpan([], 5, 9)).toEqual({ start: 0, end: 5 }); // clamped to the model
  });

  it('takes the window with the weakest coverage, comparing sorted throughputs (ties → lowest start)', () => {
    expect(chooseSpan([view('a', 0, 3, 10)], 5, 3)).toEqual({ start: 2, end: 5 });
    expect(chooseBestStart([5, 0, 0, 5, 5], 2)).toBe(1);
    expect(chooseBestStart([1, 1, 1, 1], 2)).toBe(0);
    // the weakest block decides first, then the next weakest
    expect(chooseBestStart([3, 1, 2, 1, 9], 2)).toBe(1); // windows sorted: [1,3] [1,2] [1,2] [1,9]
  });

  it('counts joining servers, ignores offline ones, and leaves self out', () => {
    const views = [view('a', 0, 2, 10), view('b', 2, 4, 5, 'joining'), view('c', 0, 4, 100, 'offline'), view('me', 0, 4, 50)];
    expect(blockThroughputs(views, 4)).toEqual([60, 60, 55, 55]);
    expect(blockThroughputs(views, 4, { exclude: 'me' })).toEqual([10, 10, 5, 5]);
    expect(chooseSpan(views, 4, 2, { self: 'me' })).toEqual({ start: 2, end: 4 });
    // records outside the model or with junk numbers are ignored
    expect(blockThroughputs([view('x', 3, 9, 1), view('y', 0, 1, Number.NaN), view('z', 1, 1, 4)], 4)).toEqual([0, 0, 0, 0]);
  });

  it('servers joining one after another tile the model', () => {
    const views: SpanView[] = [];
    for (let i = 0; i < 4; i++) {
      const span = chooseSpan(views, 8, 3);
      views.push(view(`p${i}`, span.start, span.end, 10, 'joining'));
    }
    const coverage = blockThroughputs(views, 8);
    expect(Math.min(...coverage)).toBeGreaterThan(0);
    expect(views.map((v) => v.start)).toEqual([0, 3, 5, 0]);
  });
});

describe('rebalancing', () => {
  it('moves to a weakly served span when that raises the swarm minimum by ≥ 33%', () => {
    const views = [view('a', 0, 2, 10), view('me', 0, 2, 10), view('c', 2, 4, 1)];
    const decision = shouldRebalance(views, 4, 'me');
    expect(decision).toMatchObject({ move: true, to: { start: 2, end: 4 }, minBefore: 1 });
    expect(decision.minAfter).toBeCloseTo(10, 1);
  });

  it('stays when the gain is under 33%', () => {
    const decision = shouldRebalance([view('a', 0, 2, 10), view('me', 0, 2, 10), view('c', 2, 4, 8)], 4, 'me');
    expect(decision.move).toBe(false);
    expect(decision.reason).toMatch(/only from 8 to 10/);
  });

  it('never opens a gap', () => {
    const decision = shouldRebalance([view('me', 0, 2, 10), view('b', 2, 4, 1)], 4, 'me');
    expect(decision).toMatchObject({ move: false, reason: 'leaving this span would open a gap' });
  });

  it('stays on its best place, and when it is not announced', () => {
    expect(shouldRebalance([view('a', 0, 4, 10), view('me', 2, 4, 10)], 4, 'me')).toMatchObject({ move: false, reason: 'already on the best span' });
    expect(shouldRebalance([view('a', 0, 4, 10)], 4, 'me').move).toBe(false);
  });

  it('may fill a gap the swarm already has', () => {
    // blocks 2..3 are unserved; two servers overlap on [0, 2)
    const decision = shouldRebalance([view('a', 0, 2, 10), view('me', 0, 2, 10)], 4, 'me');
    expect(decision).toMatchObject({ move: true, to: { start: 2, end: 4 }, minBefore: 0 });
  });

  it('is stable: after the move the same check says stay', () => {
    const views = [view('a', 0, 2, 10), view('me', 0, 2, 10), view('c', 2, 4, 1)];
    const first = shouldRebalance(views, 4, 'me');
    const moved = views.map((v) => (v.peerId === 'me' ? view('me', first.to!.start, first.to!.end, 10) : v));
    expect(shouldRebalance(moved, 4, 'me').move).toBe(false);
  });
});

describe('sizing and announced figures', () => {
  it('sizes a span from free memory', () => {
    expect(blocksForMemory({ freeBytes: 8e9, bytesPerBlock: 1e9, numBlocks: 32, reserveBytes: 2e9 })).toBe(6);
    expect(blocksForMemory({ freeBytes: 8e9, bytesPerBlock: 1e9, numBlocks: 4 })).toBe(4);
    expect(blocksForMemory({ freeBytes: 1e8, bytesPerBlock: 1e9, numBlocks: 32 })).toBe(1);
    expect(blocksForMemory({ freeBytes: 8e9, bytesPerBlock: 5e8, numBlocks: 32, cacheBytesPerTokenPerBlock: 1e5, cacheTokens: 5000, reserveBytes: 0 })).toBe(8);
  });

  it('estimates network throughput from the hidden size', () => {
    // 100 Mbit/s, 8192 hidden at 2 bytes, in and out: 12.5e6 / 32768
    expect(estimateNetworkThroughput(8192)).toBeCloseTo(381.47, 1);
    expect(estimateNetworkThroughput(64, { bitsPerSecond: 1e9, bytesPerValue: 4 })).toBeCloseTo(244140.6, 0);
  });

  it('parses nvidia-smi output', () => {
    expect(parseNvidiaSmi('NVIDIA H100 80GB HBM3, 81559 MiB\n')).toEqual({ kind: 'cuda', name: 'NVIDIA H100 80GB HBM3', memoryBytes: 81559 * 1024 ** 2 });
    expect(parseNvidiaSmi('')).toBeUndefined();
  });
});
