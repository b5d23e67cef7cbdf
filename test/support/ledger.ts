/**
 * Ledgers for tests, on both backends. PGlite: a migrated data directory is built once (initdb takes seconds) and
 * cached in the temp dir by migration hash; each fresh ledger opens a copy. PostgreSQL: a database per caller at
 * COROLLA_TEST_DATABASE_URL's server, dropped by `dropTestDatabases`.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { LEDGER_MIGRATIONS_DIR, openLedger, type OpenLedgerOptions } from '../../src/gateway/ledger/index.js';
import type { Ledger } from '../../src/gateway/types.js';
import { tempDir } from './files.js';
import { TEST_DATABASE_URL } from './services.js';


const HOW_TO_START_POSTGRES =
  'start it with: service postgresql start && su postgres -c "psql -c \\"ALTER USER postgres PASSWORD \'postgres\'\\"" ' +
  '(or point COROLLA_TEST_DATABASE_URL at another server)';

function migrationsHash(): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else hash.update(entry.name).update(fs.readFileSync(full));
    }
  };
  walk(LEDGER_MIGRATIONS_DIR);
  return hash.digest('hex').slice(0, 16);
}

let template: Promise<string> | undefined;

/** A migrated PGlite `ledger` directory to copy; built once per machine and migration set. */
function pgliteTemplate(): Promise<string> {
  template ??= (async () => {
    const final = path.join(os.tmpdir(), `corolla-ledger-template-${migrationsHash()}`);
    if (fs.existsSync(path.join(final, 'PG_VERSION'))) return final;
    const building = tempDir('corolla-ledger-template-build-');
    const ledger = await openLedger({ dataDir: building });
    await ledger.close();
    try {
      fs.renameSync(path.join(building, 'ledger'), final);
    } catch (error) {
      // another test file built it at the same time: use theirs
      if (!fs.existsSync(path.join(final, 'PG_VERSION'))) throw error;
    }
    fs.rmSync(building, { recursive: true, force: true });
    return final;
  })();
  return template;
}

/** A new data directory whose `ledger` is a migrated, empty PGlite database. The caller removes it. */
export async function pgliteDataDir(): Promise<string> {
  const dir = tempDir('corolla-ledger-');
  fs.cpSync(await pgliteTemplate(), path.join(dir, 'ledger'), { recursive: true });
  return dir;
}

const created: string[] = [];

/** A new, empty database on the test server; fails saying how to start the server when it is not running. */
export async function createTestDatabase(): Promise<string> {
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`PostgreSQL is not reachable at ${TEST_DATABASE_URL} (${(error as Error).message}); ${HOW_TO_START_POSTGRES}`);
  }
  try {
    const name = `corolla_test_${process.pid}_${randomBytes(4).toString('hex')}`;
    await admin.query(`create database ${name}`);
    created.push(name);
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${name}`;
    return url.toString();
  } finally {
    await admin.end();
  }
}

/** Drops every database `createTestDatabase` made in this process. */
export async function dropTestDatabases(): Promise<void> {
  if (created.length === 0) return;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    for (const name of created.splice(0)) await admin.query(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}

export interface LedgerBackend {
  readonly name: 'pglite' | 'postgres';
  /** Where a fresh, empty ledger lives (open it with openLedger). */
  location(): Promise<Pick<OpenLedgerOptions, 'databaseUrl' | 'dataDir'>>;
  /** A fresh, empty ledger. */
  open(options?: Omit<OpenLedgerOptions, 'databaseUrl' | 'dataDir'>): Promise<Ledger>;
  /** Closes what `open` opened, removes the directories and drops the databases. */
  cleanup(): Promise<void>;
}

function backend(name: LedgerBackend['name'], location: LedgerBackend['location'], removeAll: () => Promise<void>): LedgerBackend {
  const opened: Ledger[] = [];
  return {
    name,
    location,
    async open(options = {}) {
      const ledger = await openLedger({ ...(await location()), ...options });
      opened.push(ledger);
      return ledger;
    },
    async cleanup() {
      await Promise.all(opened.splice(0).map((ledger) => ledger.close()));
      await removeAll();
    },
  };
}

export function pgliteBackend(): LedgerBackend {
  const dirs: string[] = [];
  return backend(
    'pglite',
    async () => {
      const dataDir = await pgliteDataDir();
      dirs.push(dataDir);
      return { dataDir };
    },
    async () => {
      for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    },
  );
}

export function postgresBackend(): LedgerBackend {
  return backend('postgres', async () => ({ databaseUrl: await createTestDatabase() }), dropTestDatabases);
}
