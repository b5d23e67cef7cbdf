/**
 * Opens the oracle's store: PostgreSQL (node-postgres) when a database URL is given, else embedded PGlite in
 * `<dataDir>/oracle`. Either way drizzle's migrator brings migrations/oracle up to date before first use.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PGlite as PGliteType } from '@electric-sql/pglite';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import type { Pool as PoolType } from 'pg';
import { CorollaError } from '../errors.js';
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
  readonly logger?: ComponentLogger;
}

export async function openOracleStore(options: OpenOracleStoreOptions): Promise<OracleStore> {
  const log = (options.logger ?? silentLogger).forComponent('corolla:oracle:store');
  try {
    if (options.databaseUrl) {
      const store = await openPostgres(options.databaseUrl);
      log('opened the oracle store on PostgreSQL');
      return store;
    }
    if (options.dataDir) {
      const dir = path.join(options.dataDir, 'oracle');
      const store = await openPglite(dir);
      log('opened the embedded oracle store in %s', dir);
      return store;
    }
  } catch (error) {
    if (error instanceof CorollaError) throw error;
    const cause = (error as { cause?: Error }).cause;
    throw new OracleStoreError(`cannot open the oracle store: ${cause?.message ?? (error as Error).message}`, { cause: error });
  }
  throw new OracleStoreError('the oracle store needs a database URL or a data directory');
}

async function openPostgres(url: string): Promise<OracleStore> {
  const [{ default: pg }, { drizzle }, { migrate }] = await Promise.all([import('pg'), import('drizzle-orm/node-postgres'), import('drizzle-orm/node-postgres/migrator')]);
  const pool: PoolType = new pg.Pool({ connectionString: url });
  // an idle connection the server drops emits 'error' on the pool; unhandled, it would kill the process
  pool.on('error', () => {});
  try {
    const client = await pool.connect();
    try {
      await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      try {
        await migrate(drizzle({ client }), MIGRATION_CONFIG);
      } finally {
        await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
      }
    } finally {
      client.release();
    }
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new OracleStore(drizzle({ client: pool }), () => pool.end());
}

async function openPglite(dir: string): Promise<OracleStore> {
  const [{ PGlite }, { drizzle }, { migrate }] = await Promise.all([import('@electric-sql/pglite'), import('drizzle-orm/pglite'), import('drizzle-orm/pglite/migrator')]);
  fs.mkdirSync(dir, { recursive: true });
  let client: PGliteType | undefined;
  try {
    client = await PGlite.create(dir);
    await migrate(drizzle({ client }), MIGRATION_CONFIG);
  } catch (error) {
    await client?.close().catch(() => {});
    throw error;
  }
  const opened = client;
  return new OracleStore(drizzle({ client: opened }), () => opened.close());
}
