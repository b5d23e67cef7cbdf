/**
 * Opens the usage ledger: PostgreSQL (node-postgres) when a database URL is given, else embedded PGlite in
 * `<dataDir>/ledger`. Either way the same schema, brought up to date by drizzle's migrator before first use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite as PGliteType } from '@electric-sql/pglite';
import { DrizzleQueryError } from 'drizzle-orm';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import type { Pool as PoolType } from 'pg';
import { CorollaError } from '../../errors.js';
import { silentLogger, type ComponentLogger, type Logger } from '../../util/logger.js';
import { LedgerError } from '../errors.js';
import type { Ledger } from '../types.js';
import { DrizzleLedger } from './drizzle-ledger.js';
import { lockDataDir } from './lock.js';

/** migrations/ledger at the package root (three levels up from src/gateway/ledger and from dist/gateway/ledger). */
export const LEDGER_MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/ledger', import.meta.url));

const MIGRATION_CONFIG: MigrationConfig = { migrationsFolder: LEDGER_MIGRATIONS_DIR, migrationsSchema: 'drizzle', migrationsTable: 'corolla_ledger_migrations' };

/** Held (pg_advisory_lock) while migrating, so gateways starting together on one database migrate one at a time. */
const MIGRATION_LOCK_KEY = 0x436f726f6c6c61n; // "Corolla"

export interface OpenLedgerOptions {
  /** postgres://… : use that PostgreSQL database. */
  readonly databaseUrl?: string;
  /** Without a URL: embedded PGlite in `<dataDir>/ledger` (created when missing; one process at a time). */
  readonly dataDir?: string;
  readonly logger?: ComponentLogger;
  /** The clock for `updated_at` and for `recover`'s staleness; tests move it. */
  readonly now?: () => Date;
}

export async function openLedger(options: OpenLedgerOptions): Promise<Ledger> {
  const log = (options.logger ?? silentLogger).forComponent('corolla:gateway:ledger');
  try {
    if (options.databaseUrl) return await openPostgres(options.databaseUrl, log, options.now);
    if (options.dataDir) return await openPglite(path.join(options.dataDir, 'ledger'), log, options.now);
  } catch (error) {
    if (error instanceof CorollaError) throw error;
    // the driver's own words, not drizzle's "Failed query: <sql>"
    const reason = error instanceof DrizzleQueryError && error.cause ? error.cause.message : (error as Error).message;
    throw new LedgerError(`cannot open the usage ledger at ${describeLocation(options)}: ${reason}`, { cause: error });
  }
  throw new LedgerError('the usage ledger needs a database URL or a data directory');
}

async function openPostgres(url: string, log: Logger, now?: () => Date): Promise<Ledger> {
  const [{ default: pg }, { drizzle }, { migrate }] = await Promise.all([import('pg'), import('drizzle-orm/node-postgres'), import('drizzle-orm/node-postgres/migrator')]);
  const pool: PoolType = new pg.Pool({ connectionString: url });
  // an idle connection that the server drops emits 'error' on the pool, which would otherwise kill the process
  pool.on('error', (error) => log.error('idle database connection failed: %s', error.message));
  try {
    const client = await pool.connect();
    let healthy = true;
    try {
      await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      try {
        await migrate(drizzle({ client }), MIGRATION_CONFIG);
      } finally {
        await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]).catch(() => (healthy = false));
      }
    } finally {
      // a connection that could not unlock is dropped, which releases its session lock
      client.release(!healthy);
    }
  } catch (error) {
    await pool.end();
    throw error;
  }
  log('opened the ledger on PostgreSQL %s', redact(url));
  return new DrizzleLedger(drizzle({ client: pool }), { close: () => pool.end(), now, log });
}

async function openPglite(dir: string, log: Logger, now?: () => Date): Promise<Ledger> {
  const [{ PGlite }, { drizzle }, { migrate }] = await Promise.all([import('@electric-sql/pglite'), import('drizzle-orm/pglite'), import('drizzle-orm/pglite/migrator')]);
  fs.mkdirSync(dir, { recursive: true });
  const unlock = lockDataDir(dir);
  let client: PGliteType | undefined;
  try {
    client = await PGlite.create(dir);
    await migrate(drizzle({ client }), MIGRATION_CONFIG);
  } catch (error) {
    await client?.close().catch(() => {});
    unlock();
    throw error;
  }
  log('opened the embedded ledger in %s', dir);
  const opened = client;
  return new DrizzleLedger(drizzle({ client: opened }), {
    close: async () => {
      try {
        await opened.close();
      } finally {
        unlock();
      }
    },
    now,
    log,
  });
}

/** Where the ledger is, for messages: a database URL without its password, or the directory. */
function describeLocation(options: OpenLedgerOptions): string {
  return options.databaseUrl ? redact(options.databaseUrl) : path.join(options.dataDir ?? '', 'ledger');
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable database URL)';
  }
}
