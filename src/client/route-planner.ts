/**
 * Route planning (pure functions): which chain of servers a session's hidden states go through.
 *
 * As in Petals, a graph is built over (server, block) nodes plus one "client holds the hidden state" node per block
 * boundary, and Dijkstra finds the cheapest path from the first boundary to the last. Costs estimate the latency of
 * one single-token decode step, in milliseconds:
 *
 *   entering a server  = RTT/2 + per-hop overhead + hidden-state transfer (1000 / network tok/s) + load wait
 *   each block inside  = (1000 / compute tok/s) / span length  (compute is announced for the whole span)
 *   leaving a server   = RTT/2 (the client relays every hop, so a hop costs a full round trip)
 *
 * A server can be entered only at its span's start and left only at its span's end (servers serve exactly their
 * announced span), unless `subSpans` is set, for servers that accept any sub-range. So routes switch servers only at
 * span boundaries. Servers that are banned, not online, announce a different block count, or have fewer cache
 * tokens left than the session needs are excluded; load (queued steps, active sessions) and tight cache add cost.
 */
import type { ServerRecord, VerifiedRecord } from '../swarm/records/index.js';
import { DEFAULT_ENGINE_MISMATCH_PENALTY_MS } from './defaults.js';
import { NoRouteError, type ExcludedServer } from './errors.js';

/** What the planner reads of a server record. */
export type PlannerRecord = Pick<ServerRecord, 'peerId' | 'span' | 'numBlocks' | 'state' | 'throughput' | 'cacheTokensLeft' | 'load'> &
  Partial<Pick<ServerRecord, 'addrs' | 'modelId' | 'engine'>>;

export type RecordLike = VerifiedRecord | PlannerRecord;

export interface CostModel {
  /** Round-trip time assumed for servers without a measurement (ms). Default 20. */
  readonly defaultRttMs?: number;
  /** Fixed cost per hop: framing, codecs, scheduling (ms). Default 1. */
  readonly hopOverheadMs?: number;
  /** Weight of each queued step of a server, in units of its own per-step time. Default 1. */
  readonly queuedStepWeight?: number;
  /** Weight of each active session of a server, in units of its own per-step time (batching hides most). Default 0.1. */
  readonly activeSessionWeight?: number;
  /** Extra cost when a server has room for the session but less than twice its length (ms). Default 5. */
  readonly tightCachePenaltyMs?: number;
  /**
   * Extra cost of a server whose engine fingerprint differs from `preferEngine` (ms). Default
   * DEFAULT_ENGINE_MISMATCH_PENALTY_MS: large enough that a matching server wins wherever one can serve.
   */
  readonly engineMismatchPenaltyMs?: number;
}

export interface PlanOptions extends CostModel {
  /** Blocks in the model. Records announcing another count are excluded. */
  readonly numBlocks: number;
  /** First block of the route (default 0). */
  readonly start?: number;
  /**
   * Where the route may end: one block boundary (default numBlocks) or several (failover: any boundary where an
   * existing hop can take over). `endCostMs` adds a cost per end (the rest of the existing route from there).
   */
  readonly end?: number | readonly number[];
  readonly endCostMs?: ReadonlyMap<number, number>;
  /** Cache tokens the session needs on every server (its max length). Servers with fewer left are excluded. */
  readonly maxLength: number;
  /** Servers to leave out. */
  readonly banned?: ReadonlySet<string> | ((peerId: string) => boolean);
  /** Measured round-trip times by peer id (ms). */
  readonly rttMs?: ReadonlyMap<string, number>;
  /** Whether servers accept sub-ranges of their span (default false: whole spans only). */
  readonly subSpans?: boolean;
  /**
   * Engine fingerprint to prefer (failover: the failed hop's), so that replayed outputs are bit-identical and the
   * downstream hops need no rewind. Servers with another or no fingerprint cost engineMismatchPenaltyMs more.
   */
  readonly preferEngine?: string;
}

export interface RouteHop {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  /** The server's announced record (addresses, span, throughput…). */
  readonly record: PlannerRecord;
  /** The hop's estimated share of one decode step (ms). */
  readonly costMs: number;
  /** True when the server holds every block of the model (a whole-model / LlamaNet-style server). */
  readonly wholeModel: boolean;
}

export interface Route {
  readonly start: number;
  readonly end: number;
  readonly hops: readonly RouteHop[];
  /** Estimated latency of one decode step through the route (ms), excluding `endCostMs`. */
  readonly costMs: number;
}

/** The planner's view of a record (a verified record's typed fields, or the plain record). */
export const recordOf = (value: RecordLike): PlannerRecord => ('envelope' in value && 'record' in value ? value.record : value) as PlannerRecord;

const MIN_RATE = 1e-3;

/** Estimated cost (ms) of one decode step through `record`'s blocks [start, end) as one hop. */
export function hopCostMs(value: RecordLike, start: number, end: number, options: CostModel & { rttMs?: ReadonlyMap<string, number>; maxLength?: number } = {}): number {
  const record = recordOf(value);
  const rtt = options.rttMs?.get(record.peerId) ?? options.defaultRttMs ?? 20;
  return enterCostMs(record, rtt, options) + (end - start) * perBlockMs(record) + rtt / 2 + cachePenaltyMs(record, options);
}

function spanComputeMs(record: PlannerRecord): number {
  return 1000 / Math.max(record.throughput.compute, MIN_RATE);
}

function perBlockMs(record: PlannerRecord): number {
  return spanComputeMs(record) / (record.span.end - record.span.start);
}

function enterCostMs(record: PlannerRecord, rtt: number, options: CostModel): number {
  const step = spanComputeMs(record);
  const wait = step * ((options.queuedStepWeight ?? 1) * record.load.queuedSteps + (options.activeSessionWeight ?? 0.1) * record.load.activeSessions);
  return rtt / 2 + (options.hopOverheadMs ?? 1) + 1000 / Math.max(record.throughput.network, MIN_RATE) + wait;
}

function cachePenaltyMs(record: PlannerRecord, options: CostModel & { maxLength?: number }): number {
  return options.maxLength !== undefined && record.cacheTokensLeft < 2 * options.maxLength ? options.tightCachePenaltyMs ?? 5 : 0;
}

function enginePenaltyMs(record: PlannerRecord, options: PlanOptions): number {
  return options.preferEngine !== undefined && record.engine !== options.preferEngine ? options.engineMismatchPenaltyMs ?? DEFAULT_ENGINE_MISMATCH_PENALTY_MS : 0;
}

/** Splits records into usable servers and the reasons the others were excluded. */
export function usableServers(records: readonly RecordLike[], options: PlanOptions): { servers: PlannerRecord[]; excluded: ExcludedServer[] } {
  const isBanned = typeof options.banned === 'function' ? options.banned : (peerId: string) => (options.banned as ReadonlySet<string> | undefined)?.has(peerId) ?? false;
  const byPeer = new Map<string, PlannerRecord>();
  for (const value of records) {
    const record = recordOf(value);
    const known = byPeer.get(record.peerId);
    // one record per peer; keep the first (lookups already return the newest per peer)
    if (!known) byPeer.set(record.peerId, record);
  }
  const servers: PlannerRecord[] = [];
  const excluded: ExcludedServer[] = [];
  for (const record of byPeer.values()) {
    const span = `[${record.span.start}, ${record.span.end})`;
    if (isBanned(record.peerId)) excluded.push({ peerId: record.peerId, reason: 'banned', detail: `banned after a failure (${span})` });
    else if (record.state !== 'online') excluded.push({ peerId: record.peerId, reason: 'state', detail: `state ${record.state} (${span})` });
    else if (record.numBlocks !== options.numBlocks) excluded.push({ peerId: record.peerId, reason: 'blocks', detail: `announces ${record.numBlocks} blocks, the model has ${options.numBlocks}` });
    else if (!(record.span.start >= 0 && record.span.end <= options.numBlocks && record.span.start < record.span.end)) excluded.push({ peerId: record.peerId, reason: 'span', detail: `invalid span ${span}` });
    else if (record.cacheTokensLeft < options.maxLength) excluded.push({ peerId: record.peerId, reason: 'cache', detail: `${record.cacheTokensLeft} cache tokens left, the session needs ${options.maxLength} (${span})` });
    else servers.push(record);
  }
  // deterministic order: ties in cost resolve the same way on every run
  servers.sort((a, b) => a.span.start - b.span.start || a.span.end - b.span.end || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  return { servers, excluded };
}

/** A binary min-heap of (cost, node), ties broken by node index. */
class MinHeap {
  private readonly cost: number[] = [];
  private readonly node: number[] = [];
  get size(): number {
    return this.node.length;
  }
  private less(i: number, j: number): boolean {
    return this.cost[i]! < this.cost[j]! || (this.cost[i] === this.cost[j] && this.node[i]! < this.node[j]!);
  }
  private swap(i: number, j: number): void {
    [this.cost[i], this.cost[j]] = [this.cost[j]!, this.cost[i]!];
    [this.node[i], this.node[j]] = [this.node[j]!, this.node[i]!];
  }
  push(cost: number, node: number): void {
    this.cost.push(cost);
    this.node.push(node);
    let i = this.node.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.cost[0]!, this.node[0]!];
    const lastCost = this.cost.pop()!;
    const lastNode = this.node.pop()!;
    if (this.node.length > 0) {
      this.cost[0] = lastCost;
      this.node[0] = lastNode;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.node.length && this.less(l, m)) m = l;
        if (r < this.node.length && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/**
 * Plans the cheapest chain of servers through blocks [start, end). Throws NoRouteError naming the uncovered blocks
 * (or how far a chain gets) when there is none.
 */
export function planRoute(records: readonly RecordLike[], options: PlanOptions): Route {
  const numBlocks = options.numBlocks;
  const start = options.start ?? 0;
  const ends = [...new Set(options.end === undefined ? [numBlocks] : typeof options.end === 'number' ? [options.end] : options.end)];
  if (!Number.isInteger(numBlocks) || numBlocks < 1) throw new RangeError(`numBlocks must be a positive integer, got ${numBlocks}`);
  if (!Number.isInteger(start) || start < 0 || start >= numBlocks) throw new RangeError(`start must be in 0..${numBlocks - 1}, got ${start}`);
  if (ends.length === 0 || ends.some((e) => !Number.isInteger(e) || e <= start || e > numBlocks)) {
    throw new RangeError(`route ends must lie in ${start + 1}..${numBlocks}, got ${ends.join(', ')}`);
  }
  const farthestEnd = Math.max(...ends);
  const { servers, excluded } = usableServers(records, options);
  const subSpans = options.subSpans ?? false;

  // Node layout: boundaries 0..numBlocks, then for server i its nodes (i, b) for b in [span.start, span.end].
  const boundaryCount = numBlocks + 1;
  const base: number[] = [];
  let total = boundaryCount;
  for (const server of servers) {
    base.push(total);
    total += server.span.end - server.span.start + 1;
  }
  const serverOfNode = new Int32Array(total).fill(-1);
  servers.forEach((server, i) => serverOfNode.fill(i, base[i]!, base[i]! + server.span.end - server.span.start + 1));
  const blockOfNode = (node: number): number => (node < boundaryCount ? node : servers[serverOfNode[node]!]!.span.start + (node - base[serverOfNode[node]!]!));

  // Edges, as adjacency lists of (to, cost).
  const adjacency: { to: number; cost: number }[][] = Array.from({ length: total }, () => []);
  servers.forEach((server, i) => {
    const rtt = options.rttMs?.get(server.peerId) ?? options.defaultRttMs ?? 20;
    const enter = enterCostMs(server, rtt, options) + cachePenaltyMs(server, options) + enginePenaltyMs(server, options);
    const block = perBlockMs(server);
    const { start: s, end: e } = server.span;
    for (let b = s; b <= e; b++) {
      const node = base[i]! + (b - s);
      if (b < e) {
        if (b >= start && (b === s || subSpans)) adjacency[b]!.push({ to: node, cost: enter });
        adjacency[node]!.push({ to: node + 1, cost: block });
      }
      if (b > s && (b === e || subSpans)) adjacency[node]!.push({ to: b, cost: rtt / 2 });
    }
  });

  const dist = new Float64Array(total).fill(Infinity);
  const hops = new Int32Array(total).fill(0);
  const prev = new Int32Array(total).fill(-1);
  const heap = new MinHeap();
  dist[start] = 0;
  heap.push(0, start);
  while (heap.size > 0) {
    const [cost, node] = heap.pop();
    if (cost > dist[node]!) continue;
    for (const edge of adjacency[node]!) {
      const next = cost + edge.cost;
      const nextHops = hops[node]! + (node < boundaryCount ? 1 : 0);
      // Prefer fewer hops among equal costs.
      if (next < dist[edge.to]! || (next === dist[edge.to]! && nextHops < hops[edge.to]!)) {
        dist[edge.to] = next;
        hops[edge.to] = nextHops;
        prev[edge.to] = node;
        heap.push(next, edge.to);
      }
    }
  }

  let bestEnd = -1;
  let bestCost = Infinity;
  for (const e of ends) {
    const cost = dist[e]! + (options.endCostMs?.get(e) ?? 0);
    if (cost < bestCost || (cost === bestCost && e < bestEnd)) {
      bestCost = cost;
      bestEnd = e;
    }
  }
  if (bestEnd < 0 || !Number.isFinite(bestCost)) {
    const covered = new Set<number>();
    for (const server of servers) for (let b = server.span.start; b < server.span.end; b++) covered.add(b);
    const uncovered: number[] = [];
    for (let b = start; b < farthestEnd; b++) if (!covered.has(b)) uncovered.push(b);
    let reached = start;
    for (let b = start; b <= numBlocks; b++) if (Number.isFinite(dist[b]!)) reached = Math.max(reached, b);
    throw new NoRouteError({ start, end: farthestEnd, uncoveredBlocks: uncovered, reachedBlock: reached, excluded });
  }

  // Walk back: boundary → (server, exit block) … (server, entry block) → boundary.
  const route: RouteHop[] = [];
  let node = bestEnd;
  while (node !== start) {
    const exitBoundary = node;
    let inner = prev[node]!;
    const server = serverOfNode[inner]!;
    while (prev[inner]! >= boundaryCount) inner = prev[inner]!;
    const entryBoundary = prev[inner]!;
    const record = servers[server]!;
    const entry = blockOfNode(inner);
    route.push({
      peerId: record.peerId,
      start: entry,
      end: exitBoundary,
      record,
      costMs: dist[exitBoundary]! - dist[entryBoundary]!,
      wholeModel: record.span.start === 0 && record.span.end === numBlocks,
    });
    node = entryBoundary;
  }
  route.reverse();
  return { start, end: bestEnd, hops: route, costMs: dist[bestEnd]! };
}

/** One line per hop, for logs: "[0,2) …a1b2c3d4 12.3 ms → [2,5) …". */
export function describeRoute(route: Route): string {
  return route.hops.map((hop) => `[${hop.start},${hop.end}) …${hop.peerId.slice(-8)} ${hop.costMs.toFixed(1)}ms`).join(' → ');
}
