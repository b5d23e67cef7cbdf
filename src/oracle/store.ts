/**
 * The oracle's state on drizzle-orm, one implementation for both drivers (node-postgres and PGlite; open.ts picks
 * one). Every accepted report is written before it is acknowledged, so a restart loses none.
 */
import { and, asc, desc, eq, isNull, notInArray, sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { Address, Hex } from 'viem';
import { CorollaError } from '../errors.js';
import { OracleStoreError } from './errors.js';
import { conflicts, epochs, evidence, metrics, receipts, rewards } from './schema.js';

export type OracleDatabase = PgDatabase<PgQueryResultHKT>;
export type ReceiptRow = typeof receipts.$inferSelect;
export type MetricsRow = typeof metrics.$inferSelect;
export type ConflictRow = typeof conflicts.$inferInsert;
export type EpochRow = typeof epochs.$inferSelect;
export type RewardRow = typeof rewards.$inferSelect;
export type EvidenceRow = typeof evidence.$inferSelect;

/** What inserting a signed report found: it is new, or the key already holds a report with this digest. */
export type InsertOutcome = { readonly inserted: true } | { readonly inserted: false; readonly existingDigest: Hex };

export class OracleStore {
  constructor(
    private readonly db: OracleDatabase,
    private readonly release: () => Promise<void>,
  ) {}

  /** Inserts unless its epoch has begun closing (then `closed`) or its key is taken (then the digest there). */
  insertReceipt(row: ReceiptRow): Promise<InsertOutcome | 'closed'> {
    return this.guard('insertReceipt', () =>
      this.db.transaction(async (tx) => {
        if (await isClosing(tx, row.epoch)) return 'closed';
        const inserted = await tx.insert(receipts).values(row).onConflictDoNothing().returning({ digest: receipts.digest });
        if (inserted.length > 0) return { inserted: true };
        const [existing] = await tx
          .select({ digest: receipts.digest })
          .from(receipts)
          .where(and(eq(receipts.payer, row.payer), eq(receipts.sessionId, row.sessionId), eq(receipts.server, row.server), eq(receipts.blockStart, row.blockStart), eq(receipts.blockEnd, row.blockEnd)));
        return { inserted: false, existingDigest: existing!.digest };
      }),
    );
  }

  insertMetrics(row: MetricsRow): Promise<InsertOutcome | 'closed'> {
    return this.guard('insertMetrics', () =>
      this.db.transaction(async (tx) => {
        if (await isClosing(tx, row.epoch)) return 'closed';
        const inserted = await tx.insert(metrics).values(row).onConflictDoNothing().returning({ digest: metrics.digest });
        if (inserted.length > 0) return { inserted: true };
        const [existing] = await tx
          .select({ digest: metrics.digest })
          .from(metrics)
          .where(and(eq(metrics.server, row.server), eq(metrics.periodStart, row.periodStart), eq(metrics.periodEnd, row.periodEnd)));
        return { inserted: false, existingDigest: existing!.digest };
      }),
    );
  }

  /** Stores spot-check evidence; false when the same evidence is stored already. */
  insertEvidence(row: EvidenceRow): Promise<boolean> {
    return this.guard('insertEvidence', async () => (await this.db.insert(evidence).values(row).onConflictDoNothing().returning({ digest: evidence.digest })).length > 0);
  }

  /** Records the outcome of slashing for the evidence. */
  markSlashed(digest: string, outcome: { readonly txHash: Hex } | { readonly error: string }): Promise<void> {
    return this.guard('markSlashed', async () => {
      await this.db.update(evidence).set('txHash' in outcome ? { slashTx: outcome.txHash, slashError: null } : { slashError: outcome.error }).where(eq(evidence.digest, digest));
    });
  }

  /** The evidence accepted for `epoch`, oldest first. */
  evidence(epoch: number): Promise<EvidenceRow[]> {
    return this.guard('evidence', () => this.db.select().from(evidence).where(eq(evidence.epoch, epoch)).orderBy(asc(evidence.acceptedAt)));
  }

  recordConflict(row: ConflictRow): Promise<void> {
    return this.guard('recordConflict', async () => {
      await this.db.insert(conflicts).values(row);
    });
  }

  receipts(epoch: number): Promise<ReceiptRow[]> {
    return this.guard('receipts', () => this.db.select().from(receipts).where(eq(receipts.epoch, epoch)).orderBy(asc(receipts.server)));
  }

  metrics(epoch: number): Promise<MetricsRow[]> {
    return this.guard('metrics', () => this.db.select().from(metrics).where(eq(metrics.epoch, epoch)).orderBy(asc(metrics.server), asc(metrics.periodEnd)));
  }

  /** The server's accepted receipts (all epochs) and the uptime in its latest accepted metrics. */
  serverStats(server: Address): Promise<{ receipts: number; uptimeSeconds: bigint | undefined }> {
    return this.guard('serverStats', async () => {
      const [counted] = await this.db.select({ count: sql<number>`count(*)::int` }).from(receipts).where(eq(receipts.server, server));
      const [latest] = await this.db.select({ uptimeSeconds: metrics.uptimeSeconds }).from(metrics).where(eq(metrics.server, server)).orderBy(desc(metrics.periodEnd)).limit(1);
      return { receipts: Number(counted?.count ?? 0), uptimeSeconds: latest?.uptimeSeconds };
    });
  }

  conflicts(epoch: number) {
    return this.guard('conflicts', () => this.db.select().from(conflicts).where(eq(conflicts.epoch, epoch)).orderBy(asc(conflicts.id)));
  }

  epoch(epoch: number): Promise<{ row: EpochRow; rewards: RewardRow[] } | undefined> {
    return this.guard('epoch', async () => {
      const [row] = await this.db.select().from(epochs).where(eq(epochs.epoch, epoch));
      if (!row) return undefined;
      return { row, rewards: await this.db.select().from(rewards).where(eq(rewards.epoch, epoch)).orderBy(asc(rewards.address)) };
    });
  }

  /** Stores a closing epoch's results (status `submitting`) in one transaction; false when it already had them. */
  beginClose(row: EpochRow, rows: readonly RewardRow[]): Promise<boolean> {
    return this.guard('beginClose', () =>
      this.db.transaction(async (tx) => {
        const inserted = await tx.insert(epochs).values(row).onConflictDoNothing().returning({ epoch: epochs.epoch });
        if (inserted.length === 0) return false;
        if (rows.length > 0) await tx.insert(rewards).values([...rows]);
        return true;
      }),
    );
  }

  markReported(epoch: number, txHash: Hex, at: Date): Promise<void> {
    return this.guard('markReported', async () => {
      await this.db.update(epochs).set({ status: 'reported', txHash, reportedAt: at }).where(and(eq(epochs.epoch, epoch), isNull(epochs.txHash)));
    });
  }

  /** The address's rewards in reported epochs, oldest first. */
  claimable(address: Address): Promise<RewardRow[]> {
    return this.guard('claimable', () =>
      this.db
        .select({ reward: rewards })
        .from(rewards)
        .innerJoin(epochs, eq(epochs.epoch, rewards.epoch))
        .where(and(eq(rewards.address, address), eq(epochs.status, 'reported')))
        .orderBy(asc(rewards.epoch))
        .then((rows) => rows.map((r) => r.reward)),
    );
  }

  /** Epochs before `before` that hold receipts and whose close has not finished (not begun, or still submitting). */
  unfinishedEpochs(before: number): Promise<number[]> {
    return this.guard('unfinishedEpochs', async () => {
      const reported = this.db.select({ epoch: epochs.epoch }).from(epochs).where(eq(epochs.status, 'reported'));
      const rows = await this.db
        .selectDistinct({ epoch: receipts.epoch })
        .from(receipts)
        .where(and(sql`${receipts.epoch} < ${before}`, notInArray(receipts.epoch, reported)))
        .orderBy(asc(receipts.epoch));
      return rows.map((r) => r.epoch);
    });
  }

  close(): Promise<void> {
    return this.release();
  }

  private async guard<T>(operation: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      if (error instanceof CorollaError) throw error;
      const cause = (error as { cause?: Error }).cause;
      throw new OracleStoreError(`oracle store ${operation} failed: ${cause?.message ?? (error as Error).message}`, { cause: error });
    }
  }
}

type Transaction = Parameters<Parameters<OracleDatabase['transaction']>[0]>[0];

async function isClosing(tx: Transaction, epoch: number): Promise<boolean> {
  const [row] = await tx.select({ epoch: epochs.epoch }).from(epochs).where(eq(epochs.epoch, epoch));
  return row !== undefined;
}
