/**
 * The oracle's tables. Migrations in migrations/oracle/ are generated from this file with
 * `npx drizzle-kit generate --config drizzle.oracle.config.ts`; never edit a migration that shipped.
 * Token counts and amounts are numeric(78, 0): any uint256 fits.
 */
import { sql } from 'drizzle-orm';
import { bigint, check, doublePrecision, index, integer, jsonb, numeric, pgTable, primaryKey, serial, text, timestamp } from 'drizzle-orm/pg-core';
import type { Address, Hex } from 'viem';
import type { EpochStatus } from './types.js';

const uint = (name: string) => numeric(name, { precision: 78, scale: 0, mode: 'bigint' });
const time = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
/** Unix milliseconds (fit a JS number until the year 287 396). */
const ms = (name: string) => bigint(name, { mode: 'number' });

export const receipts = pgTable(
  'oracle_receipts',
  {
    payer: text('payer').$type<Address>().notNull(),
    sessionId: text('session_id').notNull(),
    server: text('server').$type<Address>().notNull(),
    blockStart: integer('block_start').notNull(),
    blockEnd: integer('block_end').notNull(),
    modelId: text('model_id').notNull(),
    promptTokens: uint('prompt_tokens').notNull(),
    generatedTokens: uint('generated_tokens').notNull(),
    replayedTokens: uint('replayed_tokens').notNull(),
    issuedAt: ms('issued_at').notNull(),
    epoch: integer('epoch').notNull(),
    /** The EIP-712 digest: the same digest again is a duplicate, another one under this key a conflict. */
    digest: text('digest').$type<Hex>().notNull(),
    signature: text('signature').$type<Hex>().notNull(),
    acceptedAt: time('accepted_at').notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.payer, table.sessionId, table.server, table.blockStart, table.blockEnd] }),
    index('oracle_receipts_epoch_server_idx').on(table.epoch, table.server),
    check('oracle_receipts_blocks_check', sql`${table.blockStart} >= 0 and ${table.blockEnd} > ${table.blockStart}`),
  ],
);

export const metrics = pgTable(
  'oracle_metrics',
  {
    server: text('server').$type<Address>().notNull(),
    periodStart: ms('period_start').notNull(),
    periodEnd: ms('period_end').notNull(),
    peerId: text('peer_id').notNull(),
    tokensServed: uint('tokens_served').notNull(),
    sessions: bigint('sessions', { mode: 'number' }).notNull(),
    meanStepLatencyUs: uint('mean_step_latency_us').notNull(),
    uptimeSeconds: uint('uptime_seconds').notNull(),
    epoch: integer('epoch').notNull(),
    digest: text('digest').$type<Hex>().notNull(),
    signature: text('signature').$type<Hex>().notNull(),
    acceptedAt: time('accepted_at').notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.server, table.periodStart, table.periodEnd] }),
    index('oracle_metrics_epoch_idx').on(table.epoch),
    check('oracle_metrics_period_check', sql`${table.periodEnd} > ${table.periodStart}`),
  ],
);

export const conflicts = pgTable(
  'oracle_conflicts',
  {
    id: serial('id').primaryKey(),
    kind: text('kind').$type<'receipt' | 'metrics'>().notNull(),
    epoch: integer('epoch').notNull(),
    signer: text('signer').$type<Address>().notNull(),
    key: text('key').notNull(),
    existingDigest: text('existing_digest').$type<Hex>().notNull(),
    rejectedDigest: text('rejected_digest').$type<Hex>().notNull(),
    rejectedSignature: text('rejected_signature').$type<Hex>().notNull(),
    at: time('at').notNull(),
  },
  (table) => [index('oracle_conflicts_epoch_idx').on(table.epoch), check('oracle_conflicts_kind_check', sql`${table.kind} in ('receipt', 'metrics')`)],
);

/** One row per epoch whose close has begun; an epoch without a row is open. */
export const epochs = pgTable(
  'oracle_epochs',
  {
    epoch: integer('epoch').primaryKey(),
    status: text('status').$type<Exclude<EpochStatus, 'open'>>().notNull(),
    budget: uint('budget').notNull(),
    totalContribution: uint('total_contribution').notNull(),
    totalRewards: uint('total_rewards').notNull(),
    dust: uint('dust').notNull(),
    root: text('root').$type<Hex>().notNull(),
    /** The report's transaction once it is mined. */
    txHash: text('tx_hash').$type<Hex>(),
    /** Flagged metrics as computed at close (JSON with decimal strings). */
    flagged: jsonb('flagged').$type<FlaggedJson[]>().notNull(),
    closedAt: time('closed_at').notNull(),
    reportedAt: time('reported_at'),
  },
  (table) => [check('oracle_epochs_status_check', sql`${table.status} in ('submitting', 'reported')`)],
);

export interface FlaggedJson {
  readonly server: Address;
  readonly periodStart: string;
  readonly periodEnd: string;
  readonly claimedTokens: string;
  readonly receiptedTokens: string;
  readonly excess: string;
}

export const rewards = pgTable(
  'oracle_rewards',
  {
    epoch: integer('epoch')
      .notNull()
      .references(() => epochs.epoch),
    address: text('address').$type<Address>().notNull(),
    receipts: integer('receipts').notNull(),
    blockTokens: uint('block_tokens').notNull(),
    uptimeWeightPpm: uint('uptime_weight_ppm').notNull(),
    contribution: uint('contribution').notNull(),
    amount: uint('amount').notNull(),
    proof: jsonb('proof').$type<Hex[]>().notNull(),
  },
  (table) => [primaryKey({ columns: [table.epoch, table.address] }), index('oracle_rewards_address_idx').on(table.address)],
);

/**
 * Spot-check evidence (POST /v1/evidence): two servers' signed, conflicting replies to the same input history, as a
 * known payer reported them. The suspect is paid nothing in the evidence's epoch; `slashTx` once it was slashed.
 */
export const evidence = pgTable(
  'oracle_evidence',
  {
    /** evidenceDigest of the two signed replies: the same evidence again is a duplicate. */
    digest: text('digest').primaryKey(),
    epoch: integer('epoch').notNull(),
    payer: text('payer').$type<Address>().notNull(),
    suspect: text('suspect').$type<Address>().notNull(),
    suspectPeerId: text('suspect_peer_id').notNull(),
    checker: text('checker').$type<Address>().notNull(),
    checkerPeerId: text('checker_peer_id').notNull(),
    blockStart: integer('block_start').notNull(),
    blockEnd: integer('block_end').notNull(),
    position: integer('position').notNull(),
    deviation: doublePrecision('deviation').notNull(),
    /** The whole report as accepted (both replies with their outputs, the payer's signature). */
    body: jsonb('body').notNull(),
    reportedAt: ms('reported_at').notNull(),
    acceptedAt: time('accepted_at').notNull(),
    slashTx: text('slash_tx').$type<Hex>(),
    slashError: text('slash_error'),
  },
  (table) => [index('oracle_evidence_epoch_suspect_idx').on(table.epoch, table.suspect), index('oracle_evidence_suspect_idx').on(table.suspect)],
);
