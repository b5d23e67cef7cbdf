/**
 * The Ledger on drizzle-orm, one implementation for both drivers (node-postgres and PGlite): they differ only in how
 * they are opened (open.ts).
 */
import { and, asc, desc, eq, gte, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { CorollaError } from '../../errors.js';
import { LedgerError, RequestIdTakenError, UnknownRequestError } from '../errors.js';
import type { Ledger, ListUsageOptions, NewRequest, NodeContribution, OutboxReceipt, PendingReceipt, RequestEnd, RequestProgress, RequestRecord, UsageEntry } from '../types.js';
import type { Logger } from '../../util/logger.js';
import { nodeContributions, receiptOutbox, requests } from './schema.js';

export type LedgerDatabase = PgDatabase<PgQueryResultHKT>;
type Transaction = Parameters<Parameters<LedgerDatabase['transaction']>[0]>[0];

export interface DrizzleLedgerOptions {
  /** Releases the driver (and the data directory's lock). */
  readonly close: () => Promise<void>;
  /** The clock for `updated_at` and staleness; one per gateway, so skew between gateways only shifts `staleMs`. */
  readonly now?: () => Date;
  readonly log: Logger;
}

type RequestRow = typeof requests.$inferSelect;
type ContributionRow = typeof nodeContributions.$inferSelect;

function toRecord({ updatedAt: _, ...row }: RequestRow): RequestRecord {
  return row;
}

function toContribution({ requestId: _, ...row }: ContributionRow): NodeContribution {
  return row;
}

/** Old servers before the ones that replaced them, then by position in the chain. */
const CONTRIBUTION_ORDER = [asc(nodeContributions.blockStart), asc(nodeContributions.blockEnd), desc(nodeContributions.failed), asc(nodeContributions.peerId)];

export class DrizzleLedger implements Ledger {
  private readonly now: () => Date;
  private closed?: Promise<void>;

  constructor(
    private readonly db: LedgerDatabase,
    private readonly options: DrizzleLedgerOptions,
  ) {
    this.now = options.now ?? (() => new Date());
  }

  begin(request: NewRequest): Promise<void> {
    return this.guard('begin', async () => {
      const inserted = await this.db
        .insert(requests)
        .values({ ...request, completionTokens: 0, costUnits: 0n, status: 'running', updatedAt: this.now() })
        .onConflictDoNothing({ target: requests.id })
        .returning({ id: requests.id });
      if (inserted.length === 0) throw new RequestIdTakenError(request.id);
    });
  }

  progress(id: string, progress: RequestProgress): Promise<void> {
    return this.guard('progress', () => this.write(id, progress, {}));
  }

  finish(id: string, end: RequestEnd, receipts: readonly OutboxReceipt[] = []): Promise<void> {
    return this.guard('finish', () => this.write(id, end, { status: end.status, error: end.error, endedAt: end.endedAt }, receipts));
  }

  get(id: string): Promise<UsageEntry | undefined> {
    return this.guard('get', async () => {
      const [row] = await this.db.select().from(requests).where(eq(requests.id, id));
      if (!row) return undefined;
      const contributions = await this.db.select().from(nodeContributions).where(eq(nodeContributions.requestId, id)).orderBy(...CONTRIBUTION_ORDER);
      return { request: toRecord(row), contributions: contributions.map(toContribution) };
    });
  }

  list(options: ListUsageOptions = {}): Promise<UsageEntry[]> {
    return this.guard('list', () =>
      // one snapshot, so every request's contributions match its counts
      this.db.transaction(
        async (tx) => {
          const where = and(options.since ? gte(requests.startedAt, options.since) : undefined, options.until ? lt(requests.startedAt, options.until) : undefined);
          const order = options.newestFirst ? [desc(requests.startedAt), desc(requests.id)] : [asc(requests.startedAt), asc(requests.id)];
          const selected = (fields: { id: typeof requests.id } | undefined) => {
            const query = (fields ? tx.select(fields) : tx.select()).from(requests).where(where).orderBy(...order).$dynamic();
            return options.limit === undefined ? query : query.limit(options.limit);
          };
          const rows = (await selected(undefined)) as RequestRow[];
          if (rows.length === 0) return [];
          const contributions = await tx
            .select()
            .from(nodeContributions)
            .where(inArray(nodeContributions.requestId, selected({ id: requests.id })))
            .orderBy(...CONTRIBUTION_ORDER);
          const byRequest = new Map<string, ContributionRow[]>();
          for (const row of contributions) {
            const rowsOfRequest = byRequest.get(row.requestId) ?? [];
            rowsOfRequest.push(row);
            byRequest.set(row.requestId, rowsOfRequest);
          }
          return rows.map((row) => ({ request: toRecord(row), contributions: (byRequest.get(row.id) ?? []).map(toContribution) }));
        },
        { isolationLevel: 'repeatable read', accessMode: 'read only' },
      ),
    );
  }

  recover({ gatewayId, staleMs, sign }: { gatewayId: string; staleMs: number; sign?: (entry: UsageEntry) => Promise<OutboxReceipt[]> }): Promise<number> {
    return this.guard('recover', async () => {
      const now = this.now();
      const staleBefore = new Date(now.getTime() - staleMs);
      const changed = await this.db.transaction(async (tx) => {
        const rows = await tx
          .update(requests)
          // the request ended, as far as anyone can tell, at its last write: what it recorded then is what was served
          .set({ status: 'interrupted', endedAt: sql`${requests.updatedAt}`, updatedAt: now })
          .where(and(eq(requests.status, 'running'), or(eq(requests.gatewayId, gatewayId), lt(requests.updatedAt, staleBefore))))
          .returning();
        // signed for what was received up to the last write, in the same transaction as the status
        for (const row of sign ? rows : []) {
          const contributions = await tx.select().from(nodeContributions).where(eq(nodeContributions.requestId, row.id)).orderBy(...CONTRIBUTION_ORDER);
          if (contributions.length === 0) continue;
          const receipts = await sign!({ request: toRecord(row), contributions: contributions.map(toContribution) });
          if (receipts.length > 0) await insertReceipts(tx, receipts, now);
        }
        return rows;
      });
      if (changed.length > 0) this.options.log('marked %d running requests interrupted (gateway %s, or silent for %d ms)', changed.length, gatewayId, staleMs);
      return changed.length;
    });
  }

  addReceipts(receipts: readonly OutboxReceipt[]): Promise<void> {
    return this.guard('addReceipts', async () => {
      if (receipts.length > 0) await insertReceipts(this.db, receipts, this.now());
    });
  }

  pendingReceipts(limit: number): Promise<PendingReceipt[]> {
    return this.guard('pendingReceipts', () =>
      this.db
        .select({
          id: receiptOutbox.id,
          requestId: receiptOutbox.requestId,
          server: receiptOutbox.server,
          blockStart: receiptOutbox.blockStart,
          blockEnd: receiptOutbox.blockEnd,
          message: receiptOutbox.message,
          signature: receiptOutbox.signature,
        })
        .from(receiptOutbox)
        .where(isNull(receiptOutbox.sentAt))
        .orderBy(asc(receiptOutbox.id))
        .limit(limit),
    );
  }

  markReceiptsSent(ids: readonly number[]): Promise<void> {
    return this.guard('markReceiptsSent', async () => {
      if (ids.length === 0) return;
      await this.db
        .update(receiptOutbox)
        .set({ sentAt: this.now() })
        .where(and(inArray(receiptOutbox.id, [...ids]), isNull(receiptOutbox.sentAt)));
    });
  }

  close(): Promise<void> {
    this.closed ??= this.guard('close', this.options.close);
    return this.closed;
  }

  /**
   * Updates a running request, upserts its contributions and adds its receipts in one transaction (a failure loses
   * none of them alone); an ended request stays as it is.
   */
  private async write(id: string, progress: RequestProgress, end: Partial<Pick<RequestRow, 'status' | 'error' | 'endedAt'>>, receipts: readonly OutboxReceipt[] = []): Promise<void> {
    await this.db.transaction(async (tx) => {
      const updated = await tx
        .update(requests)
        .set({
          completionTokens: progress.completionTokens,
          costUnits: progress.costUnits,
          // a later write without it never erases the first token's time
          firstTokenAt: progress.firstTokenAt ?? undefined,
          updatedAt: this.now(),
          ...end,
        })
        .where(and(eq(requests.id, id), eq(requests.status, 'running')))
        .returning({ id: requests.id });
      if (updated.length === 0) {
        if (!(await exists(tx, id))) throw new UnknownRequestError(id);
        this.options.log('ignored a write to request %s, which has already ended', id);
        return;
      }
      if (receipts.length > 0) await insertReceipts(tx, receipts, this.now());
      if (progress.contributions.length === 0) return;
      await tx
        .insert(nodeContributions)
        .values(progress.contributions.map((contribution) => ({ ...contribution, requestId: id })))
        .onConflictDoUpdate({
          target: [nodeContributions.requestId, nodeContributions.peerId, nodeContributions.blockStart, nodeContributions.blockEnd],
          set: {
            ethAddress: excluded('eth_address'),
            promptTokens: excluded('prompt_tokens'),
            generatedTokens: excluded('generated_tokens'),
            replayedTokens: excluded('replayed_tokens'),
            failed: excluded('failed'),
          },
        });
    });
  }

  /** Runs one operation; driver failures become LedgerError (their SQL stays in the cause, never in the message). */
  private async guard<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof CorollaError) throw error;
      this.options.log.error('ledger %s failed: %s', operation, error instanceof Error ? error.message : String(error));
      throw new LedgerError(`the usage ledger failed (${operation})`, { cause: error });
    }
  }
}

/** Puts receipts in the outbox; one already there (same request, server and blocks) is kept as it is. */
async function insertReceipts(db: LedgerDatabase | Transaction, receipts: readonly OutboxReceipt[], createdAt: Date): Promise<void> {
  await db
    .insert(receiptOutbox)
    .values(receipts.map((receipt) => ({ ...receipt, createdAt })))
    .onConflictDoNothing({ target: [receiptOutbox.requestId, receiptOutbox.server, receiptOutbox.blockStart, receiptOutbox.blockEnd] });
}

async function exists(tx: Transaction, id: string): Promise<boolean> {
  const rows = await tx.select({ id: requests.id }).from(requests).where(eq(requests.id, id));
  return rows.length > 0;
}

function excluded(column: string): SQL {
  return sql.raw(`excluded."${column}"`);
}
