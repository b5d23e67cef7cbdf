/**
 * The ledger's tables (the seed design's `inference_sessions` and `node_contributions`, and the outbox of signed
 * receipts). Migrations in
 * migrations/ledger/ are generated from this file with `npm run db:generate`; never edit a migration that shipped.
 */
import { sql } from 'drizzle-orm';
import { bigserial, boolean, check, index, integer, jsonb, numeric, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import type { RequestApi, RequestStatus } from '../types.js';

export const REQUEST_STATUSES = ['running', 'completed', 'stopped', 'cancelled', 'failed', 'interrupted'] as const satisfies readonly RequestStatus[];
export const REQUEST_APIS = ['far-mesh', 'chat.completions', 'completions'] as const satisfies readonly RequestApi[];

/** `x in ('a', 'b')` for a CHECK; the values are our own constants, never input. */
const oneOf = (values: readonly string[]) => sql.raw(values.map((value) => `'${value}'`).join(', '));

const time = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const requests = pgTable(
  'requests',
  {
    id: text('id').primaryKey(),
    api: text('api').$type<RequestApi>().notNull(),
    apiKeyId: text('api_key_id'),
    wallet: text('wallet'),
    model: text('model').notNull(),
    gatewayId: text('gateway_id').notNull(),
    promptTokens: integer('prompt_tokens').notNull(),
    completionTokens: integer('completion_tokens').notNull().default(0),
    // 78 digits hold any uint256, so an on-chain amount always fits; scale 0: integer base units (1 FAR = 10^18).
    costUnits: numeric('cost_units', { precision: 78, scale: 0, mode: 'bigint' }).notNull().default(sql`0`),
    status: text('status').$type<RequestStatus>().notNull(),
    error: text('error'),
    startedAt: time('started_at').notNull(),
    firstTokenAt: time('first_token_at'),
    endedAt: time('ended_at'),
    /** The last write; `recover` finds a dead gateway's requests by it. */
    updatedAt: time('updated_at').notNull(),
  },
  (table) => [
    index('requests_started_at_idx').on(table.startedAt),
    index('requests_status_updated_at_idx').on(table.status, table.updatedAt),
    check('requests_status_check', sql`${table.status} in (${oneOf(REQUEST_STATUSES)})`),
    check('requests_api_check', sql`${table.api} in (${oneOf(REQUEST_APIS)})`),
    check('requests_counts_check', sql`${table.promptTokens} >= 0 and ${table.completionTokens} >= 0 and ${table.costUnits} >= 0`),
  ],
);

export const nodeContributions = pgTable(
  'node_contributions',
  {
    requestId: text('request_id')
      .notNull()
      .references(() => requests.id),
    peerId: text('peer_id').notNull(),
    ethAddress: text('eth_address'),
    blockStart: integer('block_start').notNull(),
    blockEnd: integer('block_end').notNull(),
    promptTokens: integer('prompt_tokens').notNull(),
    generatedTokens: integer('generated_tokens').notNull(),
    replayedTokens: integer('replayed_tokens').notNull(),
    failed: boolean('failed').notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.requestId, table.peerId, table.blockStart, table.blockEnd] }),
    check('node_contributions_counts_check', sql`${table.promptTokens} >= 0 and ${table.generatedTokens} >= 0 and ${table.replayedTokens} >= 0`),
  ],
);

/**
 * Signed receipts waiting for the oracle: one per server (and block span) per ended request, written when the
 * request ends and kept until the oracle has answered for them (`sent_at`).
 */
export const receiptOutbox = pgTable(
  'receipt_outbox',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    requestId: text('request_id')
      .notNull()
      .references(() => requests.id),
    server: text('server').notNull(),
    blockStart: integer('block_start').notNull(),
    blockEnd: integer('block_end').notNull(),
    /** The signed Receipt as the oracle takes it (bigints as decimal strings). */
    message: jsonb('message').$type<Record<string, string | number>>().notNull(),
    signature: text('signature').notNull(),
    createdAt: time('created_at').notNull(),
    /** When the oracle answered for it (accepted, duplicate or rejected for good); null while pending. */
    sentAt: time('sent_at'),
  },
  (table) => [
    uniqueIndex('receipt_outbox_request_server_blocks_idx').on(table.requestId, table.server, table.blockStart, table.blockEnd),
    // the sender's scan: pending receipts, oldest first
    index('receipt_outbox_pending_idx').on(table.id).where(sql`${table.sentAt} is null`),
  ],
);
