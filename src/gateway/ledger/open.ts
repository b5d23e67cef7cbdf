/**
 * Opens the usage ledger: PostgreSQL (node-postgres) when a database URL is given, else embedded PGlite in
 * `<dataDir>/ledger`. Either way the same schema, brought up to date by drizzle's migrator before first use.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DrizzleQueryError } from 'drizzle-orm';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import { CorollaError } from '../../errors.js';
import { DirectoryLockedError, openPglite, openPostgres, redactUrl } from '../../util/database.js';
import { silentLogger, type ComponentLogger } from '../../util/logger.js';
import { LedgerError } from '../errors.js';
import { LedgerLockedError } from './errors.js';
import type { Ledger } from '../types.js';
import { DrizzleLedger } from './drizzle-ledger.js';

/** The ledger's migrations: migrations/ledger at the package root (three levels up from src/gateway/ledger and from dist/gateway/ledger). */
export const LEDGER_MIGRATIONS: MigrationConfig = {
  migrationsFolder: fileURLToPath(new URL('../../../migrations/ledger', import.meta.url)),
  migrationsSchema: 'drizzle',
  migrationsTable: 'corolla_ledger_migrations',
};

/** Held (pg_advisory_lock) while migrating, so gateways starting together on one database migrate one at a time. */
const MIGRATION_LOCK_KEY = 0x436f726f6c6c61n; // "Corolla"

export interface OpenLedgerOptions {
  /** postgres://… : use that PostgreSQL database. */
  readonly databaseUrl?: string;
  /** Without a URL: embedded PGlite in `<dataDir>/ledger` (created when missing; one process at a time). */
  readonly dataDir?: string;
  /** Where a new embedded ledger's template is kept (default ~/.cache/corolla; see util/database.ts). */
  readonly cacheRoot?: string;
  readonly logger?: ComponentLogger;
  /** The clock for `updated_at` and for `recover`'s staleness; tests move it. */
  readonly now?: () => Date;
}

export async function openLedger(options: OpenLedgerOptions): Promise<Ledger> {
  const log = (options.logger ?? silentLogger).forComponent('corolla:gateway:ledger');
  try {
    if (options.databaseUrl) {
      const { db, close } = await openPostgres(options.databaseUrl, LEDGER_MIGRATIONS, MIGRATION_LOCK_KEY, log);
      log('opened the ledger on PostgreSQL %s', redactUrl(options.databaseUrl));
      return new DrizzleLedger(db, { close, now: options.now, log });
    }
    if (options.dataDir) {
      const dir = path.join(options.dataDir, 'ledger');
      const { db, close } = await openPglite(dir, LEDGER_MIGRATIONS, { cacheRoot: options.cacheRoot, log });
      log('opened the embedded ledger in %s', dir);
      return new DrizzleLedger(db, { close, now: options.now, log });
    }
  } catch (error) {
    if (error instanceof DirectoryLockedError) throw new LedgerLockedError(error.dir, error.pid, error.lockFile);
    if (error instanceof CorollaError) throw error;
    // the driver's own words, not drizzle's "Failed query: <sql>"
    const reason = error instanceof DrizzleQueryError && error.cause ? error.cause.message : (error as Error).message;
    throw new LedgerError(`cannot open the usage ledger at ${describeLocation(options)}: ${reason}`, { cause: error });
  }
  throw new LedgerError('the usage ledger needs a database URL or a data directory');
}

/** Where the ledger is, for messages: a database URL without its password, or the directory. */
function describeLocation(options: OpenLedgerOptions): string {
  return options.databaseUrl ? redactUrl(options.databaseUrl) : path.join(options.dataDir ?? '', 'ledger');
}
