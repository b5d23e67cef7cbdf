/**
 * Rebalancing: every `intervalMs`, a server whose span it chose itself checks the swarm and moves when that raises
 * the swarm's minimum per-block throughput by enough without opening a gap (span-choice.ts shouldRebalance).
 * Moving closes the open sessions (their clients fail over and replay elsewhere), and the new span is loaded after
 * the old one is freed, so memory never holds both. A span the operator fixed never moves.
 */
import type { Logger } from '../../util/logger.js';
import { formatBlockRange } from '../../util/blocks.js';
import { DEFAULT_BALANCE_QUALITY, DEFAULT_REBALANCE_INTERVAL_MS } from '../defaults.js';
import { shouldRebalance, type RebalanceDecision } from '../span-choice.js';
import type { ServerService, ServiceFactory, ServiceHost } from './types.js';

export interface RebalancingInit {
  /** How often the span is reconsidered (default DEFAULT_REBALANCE_INTERVAL_MS; 0 = only on rebalance()). */
  readonly intervalMs?: number;
  /** Move when minBefore / minAfter < balanceQuality (default DEFAULT_BALANCE_QUALITY). */
  readonly balanceQuality?: number;
}

const message = (error: unknown): string => (error as Error)?.message ?? String(error);

export class Rebalancing implements ServerService {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly host: ServiceHost, private readonly init: RebalancingInit = {}) {
    this.log = host.logger.forComponent('corolla:server:rebalancing');
  }

  start(): void {
    const intervalMs = this.init.intervalMs ?? DEFAULT_REBALANCE_INTERVAL_MS;
    if (this.host.settings.fixedRange || intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      this.rebalance().catch((error: unknown) => this.log.error(`rebalance failed: ${message(error)}`));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Checks the swarm now and moves if worthwhile. */
  async rebalance(): Promise<RebalanceDecision> {
    const { host } = this;
    if (host.settings.fixedRange) return { move: false, reason: 'the span was fixed by the operator', minBefore: 0 };
    if (host.busy) return { move: false, reason: 'busy', minBefore: 0 };
    const views = (await host.spanViews()).filter((v) => v.peerId !== host.peerId);
    views.push({ peerId: host.peerId, start: host.range.start, end: host.range.end, throughput: host.throughput.effective, state: 'online' });
    const decision = shouldRebalance(views, host.numBlocks, host.peerId, { balanceQuality: this.init.balanceQuality ?? DEFAULT_BALANCE_QUALITY });
    if (!decision.move || !decision.to || host.busy) return decision;
    this.log(`moving from blocks ${formatBlockRange(host.range)} to ${formatBlockRange(decision.to)}: ${decision.reason}`);
    const result = await host.moveTo(decision.to);
    return result.moved ? decision : { ...decision, move: false, reason: `the move failed: ${message(result.error)}` };
  }
}

/** Rebalancing as a server service. */
export function rebalancing(init: RebalancingInit = {}): ServiceFactory<Rebalancing> {
  return (host) => new Rebalancing(host, init);
}
