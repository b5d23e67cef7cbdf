/**
 * One way to open a drizzle database brought up to date by its migrations, for every store that keeps state (the
 * gateway's ledger, the oracle's store): PostgreSQL (node-postgres) at a URL, migrated under a pg_advisory_lock so
 * processes starting together on one database migrate one at a time; or embedded PGlite in a directory, guarded by
 * a pid lock file, since PGlite does not lock its directory and two instances on one directory corrupt it.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { PGlite as PGliteType } from '@electric-sql/pglite';
import type { MigrationConfig } from 'drizzle-orm/migrator';
import { defaultCacheRoot } from './cache.js';
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

/** PGlite and its drizzle driver, imported on first use: a process on PostgreSQL never loads the WebAssembly build. */
const loadPglite = () => Promise.all([import('@electric-sql/pglite'), import('drizzle-orm/pglite'), import('drizzle-orm/pglite/migrator')]);

export interface PgliteOptions {
  /** Where the template clusters that new directories start from are kept (default ~/.cache/corolla). */
  readonly cacheRoot?: string;
  /** Told when a template is built: that takes seconds, once per machine. */
  readonly log?: Logger;
}

/**
 * Embedded PGlite in `dir`, locked for this process until close. A new (empty) directory starts as a copy of a
 * template cluster with `migrations` applied, built once per machine (see pgliteTemplate): PGlite's initdb runs in
 * WebAssembly and takes 6–7 s on a 2-core machine, a copy a fifth of a second.
 */
export async function openPglite(dir: string, migrations: MigrationConfig, options: PgliteOptions = {}): Promise<OpenedDatabase> {
  const [{ PGlite }, { drizzle }, { migrate }] = await loadPglite();
  fs.mkdirSync(dir, { recursive: true });
  const unlock = lockDataDir(dir);
  let client: PGliteType | undefined;
  try {
    if (fs.readdirSync(dir).length === 0) await copyTemplate(dir, migrations, options);
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

/** Fills the empty `dir` from the template; on any failure leaves it empty, and PGlite runs initdb there itself. */
async function copyTemplate(dir: string, migrations: MigrationConfig, options: PgliteOptions): Promise<void> {
  try {
    fs.cpSync(await pgliteTemplate(migrations, options), dir, { recursive: true });
  } catch {
    for (const entry of fs.readdirSync(dir)) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * `<cacheRoot>/pglite/<migrations table>-<key>`: an empty cluster with `migrations` applied, the key a digest of the
 * PGlite version and the migration files. Built in a directory of its own and renamed into place, so a reader never
 * sees half a template and builders racing each other are harmless (the first rename wins); a new template replaces
 * the older ones of the same migrations table.
 */
export async function pgliteTemplate(migrations: MigrationConfig, { cacheRoot = defaultCacheRoot(), log }: PgliteOptions = {}): Promise<string> {
  const root = path.join(cacheRoot, 'pglite');
  const prefix = `${migrations.migrationsTable ?? 'migrations'}-`;
  const template = path.join(root, prefix + templateKey(migrations));
  if (fs.existsSync(path.join(template, 'PG_VERSION'))) return template;
  const [{ PGlite }, { drizzle }, { migrate }] = await loadPglite();
  fs.mkdirSync(root, { recursive: true });
  log?.('creating the template that new embedded databases start from, in %s (once; it takes seconds)', template);
  const building = path.join(root, `.building-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const client = await PGlite.create(building);
    try {
      await migrate(drizzle({ client }), migrations);
    } finally {
      await client.close();
    }
    try {
      fs.renameSync(building, template);
    } catch (error) {
      if (!fs.existsSync(path.join(template, 'PG_VERSION'))) throw error; // else another process renamed its own first
    }
  } finally {
    fs.rmSync(building, { recursive: true, force: true });
  }
  for (const entry of fs.readdirSync(root)) {
    const stale = entry.startsWith(prefix) ? path.join(root, entry) !== template : isAbandonedBuild(entry);
    if (stale) fs.rmSync(path.join(root, entry), { recursive: true, force: true });
  }
  return template;
}

/** A `.building-<pid>-…` directory whose process is gone (killed while building). */
function isAbandonedBuild(entry: string): boolean {
  const pid = Number(/^\.building-(\d+)-/.exec(entry)?.[1]);
  return pid > 0 && !isAlive(pid);
}

function templateKey(migrations: MigrationConfig): string {
  const hash = createHash('sha256');
  const pglite = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  hash.update(fs.readFileSync(path.join(path.dirname(pglite), '..', 'package.json')));
  hash.update(JSON.stringify([migrations.migrationsSchema, migrations.migrationsTable]));
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else hash.update(entry.name).update(fs.readFileSync(full));
    }
  };
  walk(migrations.migrationsFolder);
  return hash.digest('hex').slice(0, 16);
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
