/**
 * Which blocks a server should hold: pure functions over the swarm's announced records (Petals' block_selection,
 * made deterministic).
 *
 * - Per-block throughput: the sum of the effective throughput of every JOINING or ONLINE server whose span covers
 *   the block (joining servers count, so servers starting together spread out instead of piling onto one span).
 *   JOINING records cost nothing to forge in bulk, so the view a server chooses from (ServingHistory) keeps them only
 *   for peers it has seen ONLINE: a flood of fake joiners cannot steer servers away from a gap.
 * - A new server of N blocks takes the window of N blocks whose sorted throughputs are lexicographically smallest:
 *   first the weakest block, then the next weakest, …; ties go to the lowest start. An empty swarm gives [0, N).
 * - A running server moves when, after simulating its move and letting every other server re-choose in turn,
 *   the swarm's minimum per-block throughput would rise by at least 1 / balanceQuality (DEFAULT_BALANCE_QUALITY: +33%),
 *   and never when leaving its span would open a gap that the swarm currently does not have.
 */
import type { ServerState } from '../swarm/records/index.js';
import type { BlockRange } from '../util/blocks.js';
import { DEFAULT_BALANCE_QUALITY, DEFAULT_SERVING_HISTORY } from './defaults.js';

export interface SpanView {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  /** Effective throughput of the server through its whole span (tokens/s). */
  readonly throughput: number;
  readonly state: ServerState;
}

const EPS = 1e-3;

/**
 * The peers this server has seen ONLINE (the newest `max`), and the filter that drops JOINING views of peers never
 * seen serving. A server that moves (announces JOINING for its new span) was seen online before, so it still counts.
 */
export class ServingHistory {
  private readonly seen = new Set<string>();
  constructor(private readonly max = DEFAULT_SERVING_HISTORY) {}

  filter(views: readonly SpanView[]): SpanView[] {
    for (const view of views) {
      if (view.state !== 'online') continue;
      this.seen.delete(view.peerId); // re-insert: most recently seen last
      this.seen.add(view.peerId);
      if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value!);
    }
    return views.filter((view) => view.state !== 'joining' || this.seen.has(view.peerId));
  }
}

/** Keeps the records that count for coverage: joining/online, inside [0, numBlocks), non-empty. */
function counted(views: readonly SpanView[], numBlocks: number): SpanView[] {
  return views.filter(
    (v) => (v.state === 'online' || v.state === 'joining') && Number.isInteger(v.start) && Number.isInteger(v.end) && v.start >= 0 && v.end <= numBlocks && v.start < v.end && Number.isFinite(v.throughput) && v.throughput >= 0,
  );
}

/** Summed throughput per block of the counted servers, optionally leaving some peers out. */
export function blockThroughputs(views: readonly SpanView[], numBlocks: number, options: { exclude?: ReadonlySet<string> | string } = {}): number[] {
  const exclude = typeof options.exclude === 'string' ? new Set([options.exclude]) : options.exclude;
  const out = new Array<number>(numBlocks).fill(0);
  for (const v of counted(views, numBlocks)) {
    if (exclude?.has(v.peerId)) continue;
    for (let b = v.start; b < v.end; b++) out[b] = out[b]! + v.throughput;
  }
  return out;
}

/** Lexicographic comparison of two sorted number lists. */
function compareSorted(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

/** Start of the window of `length` blocks with the weakest coverage (see the file comment). */
export function chooseBestStart(throughputs: readonly number[], length: number): number {
  if (!Number.isInteger(length) || length < 1 || length > throughputs.length) {
    throw new RangeError(`cannot place a span of ${length} blocks in a model of ${throughputs.length} blocks`);
  }
  let best = 0;
  let bestKey: number[] | undefined;
  for (let start = 0; start + length <= throughputs.length; start++) {
    const key = throughputs.slice(start, start + length).sort((a, b) => a - b);
    if (!bestKey || compareSorted(key, bestKey) < 0) {
      best = start;
      bestKey = key;
    }
  }
  return best;
}

/** The span a new server of `length` blocks should take, ignoring `self`'s own record if present. */
export function chooseSpan(views: readonly SpanView[], numBlocks: number, length: number, options: { self?: string } = {}): BlockRange {
  const n = Math.max(1, Math.min(numBlocks, Math.floor(length)));
  const start = chooseBestStart(blockThroughputs(views, numBlocks, { exclude: options.self }), n);
  return { start, end: start + n };
}

export interface RebalanceDecision {
  readonly move: boolean;
  /** Why (for logs). */
  readonly reason: string;
  /** The swarm's minimum per-block throughput now, and after the simulated moves. */
  readonly minBefore: number;
  readonly minAfter?: number;
  /** Where to go when `move`. */
  readonly to?: BlockRange;
}

export interface RebalanceOptions {
  /** Move only if minBefore / minAfter < balanceQuality (default DEFAULT_BALANCE_QUALITY). */
  readonly balanceQuality?: number;
  /** Cap on the simulated re-choice rounds of other servers (default 100). */
  readonly maxRounds?: number;
}

/**
 * Whether server `self` should move to another span. `views` must include self's own record (its current span and
 * throughput); records of other models or other block counts must already be filtered out.
 */
export function shouldRebalance(views: readonly SpanView[], numBlocks: number, self: string, options: RebalanceOptions = {}): RebalanceDecision {
  const quality = options.balanceQuality ?? DEFAULT_BALANCE_QUALITY;
  const maxRounds = options.maxRounds ?? 100;
  const live = counted(views, numBlocks);
  // One record per peer (the caller passes verified, newest-per-peer records; be safe anyway).
  const spans = new Map<string, { start: number; end: number; throughput: number }>();
  for (const v of live) spans.set(v.peerId, { start: v.start, end: v.end, throughput: v.throughput });
  const mine = spans.get(self);
  if (!mine) return { move: false, reason: 'this server is not among the announced servers', minBefore: 0 };

  const throughputs = new Array<number>(numBlocks).fill(0);
  const add = (span: BlockRange, value: number) => {
    for (let b = span.start; b < span.end; b++) throughputs[b] = throughputs[b]! + value;
  };
  for (const span of spans.values()) add(span, span.throughput);
  const minBefore = Math.min(...throughputs);
  const length = mine.end - mine.start;

  add(mine, -mine.throughput * (1 + EPS));
  if (minBefore > EPS && Math.min(...throughputs) <= 0) {
    return { move: false, reason: 'leaving this span would open a gap', minBefore };
  }
  const newStart = chooseBestStart(throughputs, length);
  if (newStart === mine.start) return { move: false, reason: 'already on the best span', minBefore };
  add(mine, mine.throughput * EPS);
  mine.start = newStart;
  mine.end = newStart + length;
  add(mine, mine.throughput);

  // Let the other servers re-choose in turn (deterministic order) until nobody moves.
  const peers = [...spans.keys()].sort();
  let moved = true;
  for (let round = 0; moved && round < maxRounds; round++) {
    moved = false;
    for (const peer of peers) {
      const span = spans.get(peer)!;
      const len = span.end - span.start;
      add(span, -span.throughput * (1 + EPS));
      const start = chooseBestStart(throughputs, len);
      add(span, span.throughput * EPS);
      if (start !== span.start) {
        span.start = start;
        span.end = start + len;
        moved = true;
      }
      add(span, span.throughput);
    }
  }
  const minAfter = Math.min(...throughputs);
  const to = { start: newStart, end: newStart + length };
  if (minAfter < minBefore || minAfter < EPS) return { move: false, reason: 'moving would not raise the swarm minimum', minBefore, minAfter };
  if (minBefore / minAfter < quality) {
    return { move: true, reason: `moving raises the swarm minimum from ${round2(minBefore)} to ${round2(minAfter)} tok/s`, minBefore, minAfter, to };
  }
  return { move: false, reason: `moving would raise the swarm minimum only from ${round2(minBefore)} to ${round2(minAfter)} tok/s`, minBefore, minAfter };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

export interface MemorySizing {
  /** Memory we may use (e.g. os.freemem()). */
  readonly freeBytes: number;
  /** Resident bytes of one block's weights in the engine (both graphs when batching). */
  readonly bytesPerBlock: number;
  readonly numBlocks: number;
  /** KV-cache bytes per token per block, and the tokens to budget (0: use reserveBytes instead). */
  readonly cacheBytesPerTokenPerBlock?: number;
  readonly cacheTokens?: number;
  /** Bytes kept aside for everything else (default 25% of freeBytes). */
  readonly reserveBytes?: number;
}

/** How many blocks fit in memory: at least 1, at most the model. */
export function blocksForMemory(m: MemorySizing): number {
  const reserve = m.reserveBytes ?? m.freeBytes * 0.25;
  const perBlock = m.bytesPerBlock + (m.cacheBytesPerTokenPerBlock ?? 0) * (m.cacheTokens ?? 0);
  if (!(perBlock > 0)) return m.numBlocks;
  const n = Math.floor((m.freeBytes - reserve) / perBlock);
  return Math.max(1, Math.min(m.numBlocks, n));
}
