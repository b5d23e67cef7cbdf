/**
 * One way to open a drizzle database brought up to date by its migrations, for every store that keeps state (the
 * gateway's ledger, the oracle's store): PostgreSQL (node-postgres) at a URL, migrated under a pg_advisory_lock so
 * processes starting together on one database migrate one at a time; or embedded PGlite in a directory, guarded by
 * a pid lock file, since PGlite does not lock its directory and two instances on one directory corrupt it.
 */
import fs from 'node:fs';
import type { PGlite as PGliteType } from '@electric-sql/pglite';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { Pool as PoolType } from 'pg';
import type { Logger } from './logger.js';

export type MigratedDatabase = PgDatabase<PgQueryResultHKT>;

export interface OpenedDatabase {
  readonly db: MigratedDatabase;
  close(): Promise<void>;
}

/** A process (pid) holds the lock of an embedded database's directory. */
export class DirectoryLockedError extends Error {
  constructor(readonly dir: string, readonly pid: number, readonly lockFile: string) {
    super(`${dir} is in use by process ${pid}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, but someone else's
  }
}

/**
 * Takes the lock on `dir` (`<dir>.lock` beside it: initdb wants an empty directory), taking over one left by a dead
 * process; returns the function that releases it. DirectoryLockedError while a live process holds it.
 */
export function lockDataDir(dir: string): () => void {
  const file = `${dir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const pid = Number(fs.readFileSync(file, 'utf8'));
    if (attempt > 0 || (Number.isInteger(pid) && pid > 0 && isAlive(pid))) throw new DirectoryLockedError(dir, pid, file);
    fs.rmSync(file, { force: true }); // left by a process that died
  }
}

/** PostgreSQL at `url`, migrated while holding the advisory lock `lockKey`. */
export async function openPostgres(url: string, migrations: MigrationConfig, lockKey: bigint, log: Logger): Promise<OpenedDatabase> {
  const [{ default: pg }, { drizzle }, { migrate }] = await Promise.all([import('pg'), import('drizzle-orm/node-postgres'), import('drizzle-orm/node-postgres/migrator')]);
  const pool: PoolType = new pg.Pool({ connectionString: url });
  // an idle connection that the server drops emits 'error' on the pool, which would otherwise kill the process
  pool.on('error', (error) => log.error('idle database connection failed: %s', error.message));
  try {
    const client = await pool.connect();
    let healthy = true;
    try {
      await client.query('select pg_advisory_lock($1)', [lockKey.toString()]);
      try {
        await migrate(drizzle({ client }), migrations);
      } finally {
        await client.query('select pg_advisory_unlock($1)', [lockKey.toString()]).catch(() => (healthy = false));
      }
    } finally {
      // a connection that could not unlock is dropped, which releases its session lock
      client.release(!healthy);
    }
  } catch (error) {
    await pool.end();
    throw error;
  }
  return { db: drizzle({ client: pool }), close: () => pool.end() };
}

/** Embedded PGlite in `dir` (created when missing), locked for this process until close. */
export async function openPglite(dir: string, migrations: MigrationConfig): Promise<OpenedDatabase> {
  const [{ PGlite }, { drizzle }, { migrate }] = await Promise.all([import('@electric-sql/pglite'), import('drizzle-orm/pglite'), import('drizzle-orm/pglite/migrator')]);
  fs.mkdirSync(dir, { recursive: true });
  const unlock = lockDataDir(dir);
  let client: PGliteType | undefined;
  try {
    client = await PGlite.create(dir);
    await migrate(drizzle({ client }), migrations);
  } catch (error) {
    await client?.close().catch(() => {});
    unlock();
    throw error;
  }
  const opened = client;
  return {
    db: drizzle({ client: opened }) as unknown as MigratedDatabase,
    close: async () => {
      try {
        await opened.close();
      } finally {
        unlock();
      }
    },
  };
}

/** A database URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable database URL)';
  }
}
