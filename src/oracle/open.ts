/**
 * Opens the oracle's store: PostgreSQL (node-postgres) when a database URL is given, else embedded PGlite in
 * `<dataDir>/oracle`. Either way drizzle's migrator brings migrations/oracle up to date before first use.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import { CorollaError } from '../errors.js';
import { DirectoryLockedError, openPglite, openPostgres, redactUrl } from '../util/database.js';
import { silentLogger, type ComponentLogger } from '../util/logger.js';
import { OracleStoreError } from './errors.js';
import { OracleStore } from './store.js';

/** migrations/oracle at the package root (two levels up from src/oracle and from dist/oracle). */
export const ORACLE_MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/oracle', import.meta.url));

const MIGRATION_CONFIG: MigrationConfig = { migrationsFolder: ORACLE_MIGRATIONS_DIR, migrationsSchema: 'drizzle', migrationsTable: 'corolla_oracle_migrations' };

/** Held (pg_advisory_lock) while migrating, so oracles starting together on one database migrate one at a time. */
const MIGRATION_LOCK_KEY = 0x436f726f6c6c614fn; // "CorollaO"

export interface OpenOracleStoreOptions {
  /** postgres://… : use that PostgreSQL database. */
  readonly databaseUrl?: string;
  /** Without a URL: embedded PGlite in `<dataDir>/oracle` (created when missing). */
  readonly dataDir?: string;
  /** Where a new embedded store's template is kept (default ~/.cache/corolla; see util/database.ts). */
  readonly cacheRoot?: string;
  readonly logger?: ComponentLogger;
}

export async function openOracleStore(options: OpenOracleStoreOptions): Promise<OracleStore> {
  const log = (options.logger ?? silentLogger).forComponent('corolla:oracle:store');
  try {
    if (options.databaseUrl) {
      const { db, close } = await openPostgres(options.databaseUrl, MIGRATION_CONFIG, MIGRATION_LOCK_KEY, log);
      log('opened the oracle store on PostgreSQL %s', redactUrl(options.databaseUrl));
      return new OracleStore(db, close);
    }
    if (options.dataDir) {
      const dir = path.join(options.dataDir, 'oracle');
      const { db, close } = await openPglite(dir, MIGRATION_CONFIG, { cacheRoot: options.cacheRoot, log });
      log('opened the embedded oracle store in %s', dir);
      return new OracleStore(db, close);
    }
  } catch (error) {
    if (error instanceof DirectoryLockedError) throw new OracleStoreError(`the oracle store in ${error.dir} is in use by process ${error.pid}; only one process may open an embedded store (if it is not a Corolla process, delete ${error.lockFile})`, { cause: error });
    if (error instanceof CorollaError) throw error;
    const cause = (error as { cause?: Error }).cause;
    throw new OracleStoreError(`cannot open the oracle store: ${cause?.message ?? (error as Error).message}`, { cause: error });
  }
  throw new OracleStoreError('the oracle store needs a database URL or a data directory');
}
