/**
 * The client's view of one model's servers: registry lookups, cached and refreshed about every 60 s (Petals' DHT
 * refresh), forced fresh on failover, plus round-trip times measured with libp2p ping. Implements RouteSource.
 * A lookup has one overall deadline (lookupDeadlineMs), whatever the DHT walk does; past it the cached view stays.
 */
import { setMaxListeners } from 'node:events';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Registry } from '../swarm/registry/index.js';
import type { SwarmNode } from '../swarm/node.js';
import type { VerifiedRecord } from '../swarm/records/index.js';
import { SwarmTimeoutError } from '../swarm/errors.js';
import { DEFAULT_LOOKUP_DEADLINE_MS } from './defaults.js';
import { NoRouteError, SwarmUnavailableError } from './errors.js';
import { ServerMeasurements } from './measurements.js';
import type { RouteSource } from './inference-session.js';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import { planRoute, usableServers, type CostModel, type Route } from './route-planner.js';

export interface DirectoryOptions {
  /** Cached records are re-fetched after this long (ms). Default 60 000. */
  readonly refreshMs?: number;
  /** Budget of one lookup (ms), passed to the registry. Default: the registry's. */
  readonly lookupTimeoutMs?: number;
  /**
   * Overall deadline of one lookup, however the registry spends it (ms); past it the cached view is kept.
   * Default DEFAULT_LOOKUP_DEADLINE_MS.
   */
  readonly lookupDeadlineMs?: number;
  /** Budget of one ping (ms). Default 2 000. */
  readonly pingTimeoutMs?: number;
}

export interface CoverageProgress {
  readonly elapsedMs: number;
  readonly servers: number;
  readonly error: NoRouteError;
}

export class SwarmDirectory implements RouteSource {
  /** This client's own measurements of servers (step timings and open answers, from its sessions). */
  readonly measurements = new ServerMeasurements();
  private cached: VerifiedRecord[] = [];
  private fetchedAt = -Infinity;
  private inFlight?: Promise<VerifiedRecord[]>;
  private readonly rtts = new Map<string, number>();
  private readonly refreshMs: number;
  private readonly log: Logger;
  readonly node: SwarmNode;
  private readonly registry: Registry;

  constructor(
    components: { node: SwarmNode; registry: Registry; logger?: ComponentLogger },
    readonly modelId: string,
    readonly numBlocks: number,
    private readonly options: DirectoryOptions = {},
  ) {
    this.node = components.node;
    this.registry = components.registry;
    this.refreshMs = options.refreshMs ?? 60_000;
    this.log = (components.logger ?? silentLogger).forComponent('corolla:client:directory');
  }

  /** Records of the model's servers (all states; the planner keeps the online ones). */
  async records(options: { fresh?: boolean } = {}): Promise<readonly VerifiedRecord[]> {
    if (!options.fresh && performance.now() - this.fetchedAt < this.refreshMs) return this.cached;
    return this.refresh();
  }

  /** Looks the model up now (concurrent callers share one lookup). A failed lookup keeps the cached view. */
  refresh(): Promise<VerifiedRecord[]> {
    this.inFlight ??= (async () => {
      try {
        const deadlineMs = this.options.lookupDeadlineMs ?? DEFAULT_LOOKUP_DEADLINE_MS;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const records = await Promise.race([
          this.registry.lookup(this.modelId, { numBlocks: this.numBlocks, timeoutMs: this.options.lookupTimeoutMs }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new SwarmTimeoutError(`lookup of ${this.modelId} took longer than ${deadlineMs} ms`)), deadlineMs);
          }),
        ]).finally(() => clearTimeout(timer));
        this.cached = records;
        this.fetchedAt = performance.now();
        return records;
      } catch (error) {
        this.log(`lookup of ${this.modelId} failed, keeping ${this.cached.length} cached records: ${(error as Error)?.message ?? String(error)}`);
        return this.cached;
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  rttMs(): ReadonlyMap<string, number> {
    return this.rtts;
  }

  /** Pings the given servers (or every cached online one) in parallel and remembers their round-trip times. */
  async measure(peerIds?: readonly string[]): Promise<ReadonlyMap<string, number>> {
    const targets = peerIds ?? this.cached.filter(({ record }) => record.state === 'online').map(({ record }) => record.peerId);
    const byPeer = new Map(this.cached.map(({ record }) => [record.peerId, record]));
    await Promise.all(
      targets.map(async (peerId) => {
        if (peerId === this.node.peerId) return;
        try {
          const peer = peerIdFromString(peerId);
          const addrs = (byPeer.get(peerId)?.addrs ?? []).flatMap((addr) => {
            try {
              return [multiaddr(addr)];
            } catch {
              return [];
            }
          });
          if (addrs.length > 0) await this.node.libp2p.peerStore.merge(peer, { multiaddrs: addrs });
          const signal = AbortSignal.timeout(this.options.pingTimeoutMs ?? 2_000);
          setMaxListeners(Infinity, signal);
          this.rtts.set(peerId, await this.node.libp2p.services.ping.ping(peer, { signal }));
        } catch (error) {
          this.log(`ping ${peerId} failed: ${(error as Error)?.message ?? String(error)}`);
        }
      }),
    );
    return this.rtts;
  }

  /**
   * Waits until the online servers cover every block with a chain that has room for `maxLength` tokens, re-looking
   * up every `intervalMs`. Returns the best route; SwarmUnavailableError (cause: the last NoRouteError) after
   * `timeoutMs`.
   */
  async waitForCoverage(options: {
    maxLength?: number;
    timeoutMs?: number;
    intervalMs?: number;
    banned?: (peerId: string) => boolean;
    cost?: CostModel;
    onProgress?: (progress: CoverageProgress) => void;
  } = {}): Promise<Route> {
    const started = performance.now();
    const timeoutMs = options.timeoutMs ?? 60_000;
    let last: NoRouteError | undefined;
    for (let round = 0; ; round++) {
      const records = await this.records({ fresh: round > 0 });
      try {
        const plan = () => planRoute(records.map(({ record }) => this.measurements.adjust(record)), { ...options.cost, numBlocks: this.numBlocks, maxLength: options.maxLength ?? 1, banned: options.banned, rttMs: this.rtts });
        plan(); // throws NoRouteError while blocks are missing
        // covered: measure round trips to the candidates, then plan with them
        await this.measure(usableServers(records, { numBlocks: this.numBlocks, maxLength: options.maxLength ?? 1, banned: options.banned }).servers.map((s) => s.peerId));
        return plan();
      } catch (error) {
        if (!(error instanceof NoRouteError)) throw error;
        last = error;
      }
      const elapsedMs = performance.now() - started;
      options.onProgress?.({ elapsedMs, servers: records.length, error: last });
      if (elapsedMs >= timeoutMs) {
        throw new SwarmUnavailableError(`the swarm does not serve every block of ${this.modelId} (waited ${Math.round(elapsedMs / 1000)} s): ${last.message}`, {
          failures: [last],
          elapsedMs,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(options.intervalMs ?? 1_000, Math.max(0, timeoutMs - elapsedMs))));
    }
  }
}
