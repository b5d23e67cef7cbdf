/**
 * Sends the outbox's signed receipts to the oracle: every `flushMs`, batches of up to RECEIPT_BATCH_SIZE to
 * POST /v1/receipts. A receipt leaves the pending set once the oracle has answered for it — accepted, duplicate
 * (already there: a resend is harmless), or rejected (logged with the reason: it would never be accepted). When the
 * oracle cannot be reached or answers with an error, every receipt stays for the next try, after a backoff that
 * doubles up to RECEIPT_MAX_BACKOFF_MS.
 */
import type { Logger } from '../../util/logger.js';
import { RECEIPT_BATCH_SIZE, RECEIPT_CLOSE_FLUSH_MS, RECEIPT_FLUSH_MS, RECEIPT_MAX_BACKOFF_MS, RECEIPT_POST_TIMEOUT_MS } from '../defaults.js';
import type { Ledger, PendingReceipt } from '../types.js';

/** What the oracle answers for a batch. */
interface BatchAnswer {
  readonly accepted: number;
  readonly duplicates: number;
  readonly rejected: readonly { readonly index: number; readonly reason: string }[];
}

export interface ReceiptSenderSettings {
  readonly oracleUrl: string;
  readonly flushMs?: number;
}

export class ReceiptSender {
  private readonly endpoint: string;
  private readonly flushMs: number;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();
  private failures = 0;
  private closed = false;
  /** Aborts posts in flight once close() has waited long enough. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly components: { ledger: Ledger; log: Logger },
    settings: ReceiptSenderSettings,
  ) {
    this.endpoint = new URL('v1/receipts', settings.oracleUrl.endsWith('/') ? settings.oracleUrl : `${settings.oracleUrl}/`).toString();
    this.flushMs = settings.flushMs ?? RECEIPT_FLUSH_MS;
  }

  start(): void {
    this.schedule(this.flushMs);
  }

  /** Sends everything pending now (after a round already running); resolves false when the oracle could not take it. */
  flush(): Promise<boolean> {
    const round = this.round.then(() => this.sendAll());
    this.round = round.then(
      () => {},
      () => {},
    );
    return round;
  }

  /** Stops the timer and tries one last flush, for at most RECEIPT_CLOSE_FLUSH_MS; what is left waits in the outbox. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    const deadline = setTimeout(() => this.stopping.abort(), RECEIPT_CLOSE_FLUSH_MS);
    try {
      await this.flush();
    } finally {
      clearTimeout(deadline);
    }
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.flush().then((sent) => {
        this.failures = sent ? 0 : this.failures + 1;
        this.schedule(sent ? this.flushMs : Math.min(this.flushMs * 2 ** this.failures, RECEIPT_MAX_BACKOFF_MS));
      });
    }, delayMs);
    this.timer.unref();
  }

  /** Sends batches until the outbox is empty or a batch fails. */
  private async sendAll(): Promise<boolean> {
    const { ledger, log } = this.components;
    try {
      for (;;) {
        const batch = await ledger.pendingReceipts(RECEIPT_BATCH_SIZE);
        if (batch.length === 0) return true;
        if (!(await this.send(batch))) return false;
        await ledger.markReceiptsSent(batch.map((receipt) => receipt.id));
        if (batch.length < RECEIPT_BATCH_SIZE) return true;
      }
    } catch (error) {
      log.error('sending receipts failed: %s', (error as Error).message);
      return false;
    }
  }

  /** Posts one batch; true once the oracle has answered for every receipt in it. */
  private async send(batch: readonly PendingReceipt[]): Promise<boolean> {
    const { log } = this.components;
    let response: Response;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ receipts: batch.map(({ message, signature }) => ({ message, signature })) }),
        signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(RECEIPT_POST_TIMEOUT_MS)]),
      });
    } catch (error) {
      log('the oracle at %s is unreachable (%d receipts kept): %s', this.endpoint, batch.length, (error as Error).message);
      return false;
    }
    const text = await response.text().catch(() => '');
    // (a body cut off by close() reads as '' and keeps the batch: a resend is a duplicate, never a loss)
    if (!response.ok) {
      // a 5xx is the oracle's trouble; a 4xx for a whole batch is ours, and dropping signed receipts would lose pay
      log.error('the oracle answered %d to %d receipts (kept for the next try): %s', response.status, batch.length, text.slice(0, 500));
      return false;
    }
    let answer: BatchAnswer;
    try {
      answer = JSON.parse(text) as BatchAnswer;
    } catch {
      log.error('the oracle answered with something other than JSON (%d receipts kept)', batch.length);
      return false;
    }
    for (const { index, reason } of answer.rejected ?? []) {
      const receipt = batch[index];
      log.error('the oracle rejected the receipt of request %s for %s blocks [%d, %d): %s', receipt?.requestId, receipt?.server, receipt?.blockStart, receipt?.blockEnd, reason);
    }
    log('sent %d receipts: %d accepted, %d duplicates, %d rejected', batch.length, answer.accepted, answer.duplicates, answer.rejected?.length ?? 0);
    return true;
  }
}
