/**
 * Signed node metrics (opt-in): every interval the server signs an EIP-712 NodeMetrics about itself (tokens of the
 * sessions that closed in the period, sessions, mean step time, uptime) and sends it to the oracle's POST /v1/metrics.
 * Signed metrics wait in a small JSON outbox file until the oracle answers for them (accepted, duplicate, or rejected
 * with a reason, which is logged), so a restart or an oracle that is down loses none; while it is down sends are
 * retried with a backoff that doubles up to MAX_BACKOFF_MS. Periods end at epoch boundaries, since the oracle takes
 * no period that spans two epochs. Metrics never add pay: the oracle uses them only for the uptime weight.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Address, LocalAccount } from 'viem';
import { receiptDomain, signNodeMetrics } from '../../chain/receipts.js';
import type { Logger } from '../../util/logger.js';
import type { SessionCloseEvent } from '../events.js';
import type { ServerService, ServiceFactory, ServiceHost } from './types.js';

export const DEFAULT_METRICS_INTERVAL_MS = 60_000;
const MAX_BACKOFF_MS = 5 * 60_000;
const POST_TIMEOUT_MS = 10_000;
/** At most this many metrics per POST (the oracle's limit is 500). */
const BATCH_SIZE = 100;
export const METRICS_OUTBOX_FILE = 'metrics-outbox.json';

export interface MetricsReportingInit {
  /** The server's own key: the oracle takes metrics only signed by the server they describe. */
  readonly account: LocalAccount;
  readonly chainId: number;
  readonly rewardPool: Address;
  /** The oracle's base URL; metrics go to `${oracleUrl}/v1/metrics`. */
  readonly oracleUrl: string;
  /** The RewardPool's schedule (unix ms), so no period spans two epochs. */
  readonly epoch: { readonly genesisMs: number; readonly durationMs: number };
  /** Where the outbox file lives (the server's data dir). */
  readonly dataDir: string;
  readonly intervalMs?: number;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

/** One signed NodeMetrics as the oracle takes it (bigints as decimal strings). */
interface OutboxItem {
  readonly message: Record<string, string | number>;
  readonly signature: string;
}

export class MetricsReporting implements ServerService {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private readonly outboxFile: string;
  private readonly endpoint: string;
  private outbox: OutboxItem[] = [];
  private startedAt = 0;
  private periodStart = 0;
  private tokens = 0;
  private sessions = 0;
  private steps = 0;
  private busyMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private nextSendAt = 0;
  private round: Promise<void> = Promise.resolve();
  private readonly onClose = (event: CustomEvent<SessionCloseEvent>) => {
    this.tokens += event.detail.tokens;
    this.sessions++;
    this.steps += event.detail.steps;
    this.busyMs += event.detail.durationMs;
  };

  constructor(private readonly host: ServiceHost, private readonly init: MetricsReportingInit) {
    this.log = host.logger.forComponent('corolla:server:metrics');
    this.now = init.now ?? Date.now;
    this.intervalMs = init.intervalMs ?? DEFAULT_METRICS_INTERVAL_MS;
    this.outboxFile = path.join(init.dataDir, METRICS_OUTBOX_FILE);
    this.endpoint = new URL('v1/metrics', init.oracleUrl.endsWith('/') ? init.oracleUrl : `${init.oracleUrl}/`).toString();
  }

  /** Signed metrics not yet answered for by the oracle. */
  get pending(): number {
    return this.outbox.length;
  }

  start(): void {
    this.outbox = readOutbox(this.outboxFile, this.log);
    this.startedAt = this.periodStart = this.now();
    this.host.addEventListener('session:close', this.onClose);
    this.schedule();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.host.removeEventListener('session:close', this.onClose);
    await this.round;
    await this.closePeriod();
    await this.send().catch(() => {}); // one last try; what is left waits in the outbox
  }

  /** Ends the period now (signing its metrics) and sends the outbox; resolves false when the oracle could not take it. */
  async flush(): Promise<boolean> {
    const round = this.round.then(async () => {
      await this.closePeriod();
      return this.send();
    });
    this.round = round.then(
      () => {},
      () => {},
    );
    return round;
  }

  private schedule(): void {
    const now = this.now();
    const { genesisMs, durationMs } = this.init.epoch;
    const epochEnd = genesisMs + (Math.floor((now - genesisMs) / durationMs) + 1) * durationMs;
    const delay = Math.max(0, Math.min(this.periodStart + this.intervalMs, epochEnd) - now);
    this.timer = setTimeout(() => {
      void this.tick().finally(() => {
        if (this.timer) this.schedule();
      });
    }, delay);
    this.timer.unref();
  }

  private tick(): Promise<void> {
    this.round = this.round.then(async () => {
      await this.closePeriod();
      if (this.now() >= this.nextSendAt) await this.send();
    }).catch((error: unknown) => this.log.error('metrics: %s', (error as Error).message));
    return this.round;
  }

  /** Signs the period that ends now, if it is not empty, and writes it to the outbox. */
  private async closePeriod(): Promise<void> {
    const periodEnd = this.now();
    if (periodEnd <= this.periodStart) return;
    const { genesisMs, durationMs } = this.init.epoch;
    // a period may not span two epochs: one that crosses a boundary (a late timer) starts at the boundary
    const boundary = genesisMs + Math.floor((periodEnd - 1 - genesisMs) / durationMs) * durationMs;
    const periodStart = Math.max(this.periodStart, boundary);
    const signed = await signNodeMetrics(this.init.account, receiptDomain(this.init.chainId, this.init.rewardPool), {
      server: this.init.account.address,
      peerId: this.host.peerId,
      periodStart: BigInt(periodStart),
      periodEnd: BigInt(periodEnd),
      tokensServed: BigInt(this.tokens),
      sessions: this.sessions,
      meanStepLatencyUs: this.steps === 0 ? 0n : BigInt(Math.round((this.busyMs * 1000) / this.steps)),
      uptimeSeconds: BigInt(Math.floor((periodEnd - this.startedAt) / 1000)),
    });
    this.periodStart = periodEnd;
    this.tokens = this.sessions = this.steps = this.busyMs = 0;
    this.outbox.push({ message: Object.fromEntries(Object.entries(signed.message).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v])), signature: signed.signature });
    writeOutbox(this.outboxFile, this.outbox);
  }

  /** Sends the outbox in batches; answered items leave it. On failure, backs off and keeps everything. */
  private async send(): Promise<boolean> {
    while (this.outbox.length > 0) {
      const batch = this.outbox.slice(0, BATCH_SIZE);
      let answer: { rejected?: { index: number; reason: string }[] };
      try {
        const response = await (this.init.fetch ?? fetch)(this.endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ metrics: batch }),
          signal: AbortSignal.timeout(POST_TIMEOUT_MS),
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`);
        answer = (await response.json()) as typeof answer;
      } catch (error) {
        this.failures++;
        const backoff = Math.min(MAX_BACKOFF_MS, this.intervalMs * 2 ** (this.failures - 1));
        this.nextSendAt = this.now() + backoff;
        this.log('the oracle did not take %d metrics (%s); retrying in %d s', this.outbox.length, (error as Error).message, Math.round(backoff / 1000));
        return false;
      }
      for (const { index, reason } of answer.rejected ?? []) this.log.error('the oracle rejected metrics for %s–%s: %s', batch[index]?.message.periodStart, batch[index]?.message.periodEnd, reason);
      this.outbox = this.outbox.slice(batch.length);
      writeOutbox(this.outboxFile, this.outbox);
      this.failures = 0;
      this.nextSendAt = 0;
    }
    return true;
  }
}

function readOutbox(file: string, log: Logger): OutboxItem[] {
  try {
    const items = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    if (Array.isArray(items)) return items as OutboxItem[];
    log.error('ignoring %s: not a JSON array', file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') log.error('ignoring %s: %s', file, (error as Error).message);
  }
  return [];
}

/** Written to a temporary file and renamed, so a crash never leaves half an outbox. */
function writeOutbox(file: string, items: readonly OutboxItem[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(items));
  fs.renameSync(temporary, file);
}

/** Signed metrics to the oracle as a server service. */
export function metricsReporting(init: MetricsReportingInit): ServiceFactory<MetricsReporting> {
  return (host) => new MetricsReporting(host, init);
}
