/**
 * What the client has measured about servers itself, so that route planning does not take a record's throughput,
 * load or cache numbers at face value beyond first contact (a Sybil announcing 1e9 tok/s wins one route, not all).
 *
 * - Step latency: every single-token step a session runs through a hop is timed (send to reply). The median of the
 *   recent samples, per block and scaled to the server's whole span, replaces the record's `throughput.compute`.
 *   The round trip is left in (subtracting a separately pinged RTT makes small timings noise): it counts once more
 *   per hop, which only favours routes with fewer hops.
 * - Load: a measured latency already includes the server's queueing, so a measured server's record `load` is
 *   ignored (counted as idle) rather than added on top.
 * - Cache: what the server answered to our own latest `open` (its `cacheTokensLeft` plus our reservation) caps the
 *   record's.
 */
import { MEASURED_STEP_SAMPLES } from './defaults.js';
import type { PlannerRecord } from './route-planner.js';

interface Measured {
  /** Recent single-token step latencies (ms), blocks per step: [ms, blocks]. */
  readonly steps: [number, number][];
  cacheTokensLeft?: number;
}

export class ServerMeasurements {
  private readonly byPeer = new Map<string, Measured>();

  private entry(peerId: string): Measured {
    let entry = this.byPeer.get(peerId);
    if (!entry) this.byPeer.set(peerId, (entry = { steps: [] }));
    return entry;
  }

  /** A single-token step through `blocks` of the server's blocks took `ms` (round trip included). */
  recordStep(peerId: string, blocks: number, ms: number): void {
    if (!(ms >= 0) || !(blocks >= 1)) return;
    const { steps } = this.entry(peerId);
    steps.push([ms, blocks]);
    if (steps.length > MEASURED_STEP_SAMPLES) steps.shift();
  }

  /** The server had this many cache tokens free for us at our latest `open`. */
  recordOpen(peerId: string, cacheTokensLeft: number): void {
    this.entry(peerId).cacheTokensLeft = cacheTokensLeft;
  }

  /** Whether we have timed any step of this server. */
  measured(peerId: string): boolean {
    return (this.byPeer.get(peerId)?.steps.length ?? 0) > 0;
  }

  /** Median measured milliseconds per block of one decode step (round trip included); undefined if unmeasured. */
  msPerBlock(peerId: string): number | undefined {
    const entry = this.byPeer.get(peerId);
    if (!entry || entry.steps.length === 0) return undefined;
    const perBlock = entry.steps.map(([ms, blocks]) => Math.max(ms, 0.01) / blocks).sort((a, b) => a - b);
    return perBlock[Math.floor(perBlock.length / 2)]!;
  }

  /**
   * The record as the planner should see it: once measured, compute from our own timings, load idle (it is in the
   * timings), cache capped by what the server told us directly. Unmeasured servers are taken at their word (first
   * contact); the network figure is kept (it prices the hidden-state transfer, not the server's speed).
   */
  adjust<T extends PlannerRecord>(record: T): T {
    const entry = this.byPeer.get(record.peerId);
    if (!entry) return record;
    let adjusted: T = record;
    const perBlock = this.msPerBlock(record.peerId);
    if (perBlock !== undefined) {
      const compute = 1000 / (perBlock * (record.span.end - record.span.start));
      adjusted = { ...adjusted, throughput: { ...record.throughput, compute, effective: Math.min(compute, record.throughput.network) }, load: { activeSessions: 0, queuedSteps: 0 } };
    }
    if (entry.cacheTokensLeft !== undefined && entry.cacheTokensLeft < record.cacheTokensLeft) adjusted = { ...adjusted, cacheTokensLeft: entry.cacheTokensLeft };
    return adjusted;
  }
}
