/**
 * Ledgers for tests, on both backends. PGlite: each fresh ledger starts as a copy of the migrated template that
 * openLedger keeps in the cache (initdb takes seconds). PostgreSQL: a database per caller at
 * COROLLA_TEST_DATABASE_URL's server, dropped by `dropTestDatabases`.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { LEDGER_MIGRATIONS, openLedger, type OpenLedgerOptions } from '../../src/gateway/ledger/index.js';
import type { Ledger } from '../../src/gateway/types.js';
import { pgliteTemplate } from '../../src/util/database.js';
import { tempDir } from './files.js';
import { TEST_DATABASE_URL } from './services.js';

const HOW_TO_START_POSTGRES =
  'start it with: service postgresql start && su postgres -c "psql -c \\"ALTER USER postgres PASSWORD \'postgres\'\\"" ' +
  '(or point COROLLA_TEST_DATABASE_URL at another server)';

/** A new data directory whose `ledger` is a migrated, empty PGlite database (a copy of the template). The caller removes it. */
export async function pgliteDataDir(): Promise<string> {
  const dir = tempDir('corolla-ledger-');
  fs.cpSync(await pgliteTemplate(LEDGER_MIGRATIONS), path.join(dir, 'ledger'), { recursive: true });
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
