// runs alone: measures time (vitest.config.ts)
import { describe, expect, it } from 'vitest';
import { NoRouteError } from '../../src/client/errors.js';
import { describeRoute, hopCostMs, planRoute, type PlannerRecord } from '../../src/client/route-planner.js';
import { BanList } from '../../src/client/bans.js';

const N = 8;

function server(peerId: string, start: number, end: number, extra: Partial<PlannerRecord> & { compute?: number; network?: number } = {}): PlannerRecord {
  const compute = extra.compute ?? 100;
  const network = extra.network ?? 10_000;
  return {
    peerId,
    span: { start, end },
    numBlocks: N,
    state: 'online',
    throughput: { compute, network, effective: Math.min(compute, network) },
    cacheTokensLeft: 10_000,
    load: { activeSessions: 0, queuedSteps: 0 },
    ...extra,
  };
}

const chain = (route: { hops: readonly { peerId: string; start: number; end: number }[] }) => route.hops.map((h) => `${h.peerId}[${h.start},${h.end})`);

describe('route planner', () => {
  it('picks the fastest chain', () => {
    const records = [
      server('a-slow', 0, 4, { compute: 10 }),
      server('a-fast', 0, 4, { compute: 200 }),
      server('b-fast', 4, 8, { compute: 200 }),
      server('b-slow', 4, 8, { compute: 20 }),
      server('c', 0, 2, { compute: 500 }),
      server('d', 2, 8, { compute: 5 }),
    ];
    const route = planRoute(records, { numBlocks: N, maxLength: 100 });
    expect(chain(route)).toEqual(['a-fast[0,4)', 'b-fast[4,8)']);
    expect(route.start).toBe(0);
    expect(route.end).toBe(N);
    // the cost is the sum of the hops' costs, and each hop's cost matches hopCostMs
    expect(route.costMs).toBeCloseTo(route.hops.reduce((sum, hop) => sum + hop.costMs, 0), 9);
    for (const hop of route.hops) expect(hop.costMs).toBeCloseTo(hopCostMs(hop.record, hop.start, hop.end, { maxLength: 100 }), 9);
    expect(describeRoute(route)).toContain('[0,4)');
  });

  it('uses measured round trips: a far server loses to a near one of equal speed', () => {
    const records = [server('near', 0, 8), server('far', 0, 8)];
    const rttMs = new Map([['near', 1], ['far', 200]]);
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 10, rttMs }))).toEqual(['near[0,8)']);
    // …and many hops pay many round trips: two fast halves lose to one whole server when RTTs are high
    const split = [server('whole', 0, 8, { compute: 50 }), server('h1', 0, 4, { compute: 200 }), server('h2', 4, 8, { compute: 200 })];
    const high = new Map([['whole', 100], ['h1', 100], ['h2', 100]]);
    expect(chain(planRoute(split, { numBlocks: N, maxLength: 10, rttMs: high }))).toEqual(['whole[0,8)']);
    const low = new Map([['whole', 0.5], ['h1', 0.5], ['h2', 0.5]]);
    expect(chain(planRoute(split, { numBlocks: N, maxLength: 10, rttMs: low }))).toEqual(['h1[0,4)', 'h2[4,8)']);
  });

  it('prefers a single whole-model hop when it is the fastest', () => {
    const records = [server('x', 0, 3), server('y', 3, 6), server('z', 6, 8), server('whole', 0, 8, { compute: 90 })];
    const route = planRoute(records, { numBlocks: N, maxLength: 10 });
    expect(chain(route)).toEqual(['whole[0,8)']);
    expect(route.hops[0]!.wholeModel).toBe(true);
    // a much slower whole-model server is not chosen
    const slow = [server('x', 0, 3), server('y', 3, 6), server('z', 6, 8), server('whole', 0, 8, { compute: 5 })];
    const other = planRoute(slow, { numBlocks: N, maxLength: 10 });
    expect(chain(other)).toEqual(['x[0,3)', 'y[3,6)', 'z[6,8)']);
    expect(other.hops.every((hop) => !hop.wholeModel)).toBe(true);
  });

  it('switches servers only at span boundaries (no sub-ranges unless allowed)', () => {
    // [0,5) and [3,8) overlap but cannot chain without entering the second server mid-span
    const records = [server('p', 0, 5), server('q', 3, 8)];
    expect(() => planRoute(records, { numBlocks: N, maxLength: 10 })).toThrow(NoRouteError);
    try {
      planRoute(records, { numBlocks: N, maxLength: 10 });
    } catch (error) {
      const e = error as NoRouteError;
      expect(e.uncoveredBlocks).toEqual([]);
      expect(e.reachedBlock).toBe(5);
      expect(e.message).toMatch(/do not chain past block 5/);
    }
    // servers that accept sub-ranges can be entered at block 5
    const route = planRoute(records, { numBlocks: N, maxLength: 10, subSpans: true });
    expect(chain(route)).toEqual(['p[0,5)', 'q[5,8)']);
  });

  it('respects bans', () => {
    const records = [server('a', 0, 8, { compute: 1000 }), server('b', 0, 4), server('c', 4, 8)];
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 10 }))).toEqual(['a[0,8)']);
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 10, banned: new Set(['a']) }))).toEqual(['b[0,4)', 'c[4,8)']);
    let now = 0;
    const bans = new BanList({ now: () => now });
    expect(bans.ban('a')).toBe(15_000);
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 10, banned: bans.predicate }))).toEqual(['b[0,4)', 'c[4,8)']);
    now = 15_001;
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 10, banned: bans.predicate }))).toEqual(['a[0,8)']);
    // repeats double the ban; success after the ban forgives
    expect(bans.ban('a')).toBe(30_000);
    expect(bans.ban('a')).toBe(60_000);
    now += 60_001;
    bans.succeeded('a');
    expect(bans.ban('a')).toBe(15_000);
    try {
      planRoute(records, { numBlocks: N, maxLength: 10, banned: new Set(['a', 'c']) });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(NoRouteError);
      expect((error as NoRouteError).uncoveredBlocks).toEqual([4, 5, 6, 7]);
      expect((error as NoRouteError).excluded.map((e) => e.reason)).toEqual(['banned', 'banned']);
    }
  });

  it('excludes servers without cache room for the session, and penalises tight cache', () => {
    const records = [server('roomy', 0, 8, { compute: 50 }), server('full', 0, 8, { compute: 500, cacheTokensLeft: 100 })];
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 50 }))).toEqual(['full[0,8)']);
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 101 }))).toEqual(['roomy[0,8)']);
    const e = (() => {
      try {
        planRoute([records[1]!], { numBlocks: N, maxLength: 101 });
      } catch (error) {
        return error as NoRouteError;
      }
    })()!;
    expect(e).toBeInstanceOf(NoRouteError);
    expect(e.excluded[0]!.reason).toBe('cache');
    expect(e.message).toMatch(/1 cache/);
    // equal servers: the one with less than 2× the needed room costs more
    const tight = [server('t', 0, 8, { cacheTokensLeft: 150 }), server('u', 0, 8, { cacheTokensLeft: 10_000 })];
    expect(chain(planRoute(tight, { numBlocks: N, maxLength: 100 }))).toEqual(['u[0,8)']);
  });

  it('penalises load: queued steps and active sessions', () => {
    const busy = server('busy', 0, 8, { compute: 100, load: { activeSessions: 2, queuedSteps: 5 } });
    const idle = server('idle', 0, 8, { compute: 60 });
    expect(chain(planRoute([busy, idle], { numBlocks: N, maxLength: 10 }))).toEqual(['idle[0,8)']);
    expect(chain(planRoute([{ ...busy, load: { activeSessions: 0, queuedSteps: 0 } }, idle], { numBlocks: N, maxLength: 10 }))).toEqual(['busy[0,8)']);
  });

  it('reports gaps, ignoring offline, joining and mismatched servers', () => {
    const records = [
      server('a', 0, 3),
      server('b', 3, 5, { state: 'offline' }),
      server('c', 5, 8),
      server('d', 3, 5, { state: 'joining' }),
      { ...server('e', 3, 5), numBlocks: 9 },
    ];
    try {
      planRoute(records, { numBlocks: N, maxLength: 10 });
      expect.unreachable();
    } catch (error) {
      const e = error as NoRouteError;
      expect(e).toBeInstanceOf(NoRouteError);
      expect(e.code).toBe('NO_ROUTE');
      expect(e.uncoveredBlocks).toEqual([3, 4]);
      expect(e.reachedBlock).toBe(3);
      expect(e.message).toMatch(/blocks 3-4/);
      expect(e.excluded.map((x) => x.reason).sort()).toEqual(['blocks', 'state', 'state']);
    }
    expect(() => planRoute([], { numBlocks: N, maxLength: 1 })).toThrow(/blocks 0-7/);
  });

  it('plans a replacement segment that may end at any boundary where the existing route takes over', () => {
    // existing route: [0,2) [2,4) [4,8); [2,4) failed. Replacements: r1 [2,4) (slow) or r2 [2,8) (fast, replaces the rest)
    const records = [server('r1', 2, 4, { compute: 10 }), server('r2', 2, 8, { compute: 1000 }), server('tail', 4, 8)];
    const costOfExistingTail = hopCostMs(records[2]!, 4, 8);
    const keep = planRoute(records, { numBlocks: N, maxLength: 10, start: 2, end: [4, 8], endCostMs: new Map([[4, costOfExistingTail], [8, 0]]) });
    expect(chain(keep)).toEqual(['r2[2,8)']);
    expect(keep.end).toBe(8);
    // without r2, the segment ends at block 4 where the existing [4,8) hop continues
    const only = planRoute(records.filter((r) => r.peerId !== 'r2'), { numBlocks: N, maxLength: 10, start: 2, end: [4, 8], endCostMs: new Map([[4, costOfExistingTail], [8, 0]]) });
    expect(chain(only)).toEqual(['r1[2,4)']);
    expect(only.end).toBe(4);
  });

  it('is deterministic under ties and validates its arguments', () => {
    const records = [server('b', 0, 8), server('a', 0, 8), server('c', 0, 8)];
    expect(chain(planRoute(records, { numBlocks: N, maxLength: 1 }))).toEqual(['a[0,8)']);
    expect(chain(planRoute([...records].reverse(), { numBlocks: N, maxLength: 1 }))).toEqual(['a[0,8)']);
    expect(() => planRoute(records, { numBlocks: 0, maxLength: 1 })).toThrow(RangeError);
    expect(() => planRoute(records, { numBlocks: N, maxLength: 1, start: 8 })).toThrow(RangeError);
    expect(() => planRoute(records, { numBlocks: N, maxLength: 1, start: 2, end: 2 })).toThrow(RangeError);
  });

  it('scales to a large swarm', () => {
    const records: PlannerRecord[] = [];
    const blocks = 80;
    for (let i = 0; i < 400; i++) {
      const start = (i * 5) % blocks;
      const end = Math.min(blocks, start + (i % 3 === 0 ? 5 : 10));
      records.push({ ...server(`s${String(i).padStart(3, '0')}`, start, end, { compute: 10 + (i % 13) }), numBlocks: blocks });
    }
    const started = performance.now();
    const route = planRoute(records, { numBlocks: blocks, maxLength: 100 });
    expect(performance.now() - started).toBeLessThan(200);
    expect(route.hops[0]!.start).toBe(0);
    expect(route.hops.at(-1)!.end).toBe(blocks);
    for (let i = 1; i < route.hops.length; i++) expect(route.hops[i]!.start).toBe(route.hops[i - 1]!.end);
  });
});
