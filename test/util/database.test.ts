import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { LEDGER_MIGRATIONS as MIGRATIONS } from '../../src/gateway/ledger/index.js';
import { openPglite, pgliteTemplate, type OpenedDatabase } from '../../src/util/database.js';
import { tempDir } from '../support/files.js';

const opened: OpenedDatabase[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(opened.map((database) => database.close()));
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function dir(prefix: string): string {
  const made = tempDir(prefix);
  dirs.push(made);
  return made;
}

async function open(dataDir: string, cacheRoot: string): Promise<OpenedDatabase> {
  const database = await openPglite(dataDir, MIGRATIONS, { cacheRoot });
  opened.push(database);
  return database;
}

const tables = async ({ db }: OpenedDatabase): Promise<string[]> =>
  ((await db.execute(sql`select tablename from pg_tables where schemaname = 'public' order by tablename`)) as unknown as { rows: { tablename: string }[] }).rows.map((row) => row.tablename);

describe('embedded PGlite: new directories start from a migrated template', () => {
  it('builds the template once (racing builders are harmless), copies it for each new directory, and sweeps stale ones', async () => {
    const cacheRoot = dir('corolla-pglite-cache-');
    // an older template of the same migrations, and a build whose process died: both go once a new template is in place
    const root = path.join(cacheRoot, 'pglite');
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    for (const stale of ['corolla_ledger_migrations-0000000000000000', `.building-${dead}-0badcafe`]) fs.mkdirSync(path.join(root, stale, 'base'), { recursive: true });
    const other = path.join(root, 'oracle_migrations-1111111111111111');
    fs.mkdirSync(other);

    // two new databases at once: both build a template, the first rename wins
    const [first, second] = await Promise.all([open(dir('corolla-pglite-a-'), cacheRoot), open(dir('corolla-pglite-b-'), cacheRoot)]);
    const template = await pgliteTemplate(MIGRATIONS, { cacheRoot });
    expect(fs.readdirSync(root).sort()).toEqual([path.basename(other), path.basename(template)].sort());
    const migrated = await tables(first);
    expect(migrated).toEqual(['node_contributions', 'receipt_outbox', 'requests']);
    expect(await tables(second)).toEqual(migrated);

    // each database is its own copy: what one creates, neither the template nor the next one has
    await first.db.execute(sql`create table only_in_first (x integer)`);
    const built = fs.statSync(path.join(template, 'PG_VERSION')).ino;
    fs.writeFileSync(path.join(template, 'copied-from-the-template'), ''); // Postgres ignores a stray file in its directory
    const thirdDir = dir('corolla-pglite-c-');
    const third = await open(thirdDir, cacheRoot);
    expect(fs.existsSync(path.join(thirdDir, 'copied-from-the-template'))).toBe(true);
    expect(await tables(third)).toEqual(migrated);
    expect(await tables(first)).toContain('only_in_first');
    expect(fs.statSync(path.join(template, 'PG_VERSION')).ino).toBe(built); // copied, not rebuilt
  }, 120_000);

  it('still opens, through initdb, when the cache cannot be written', async () => {
    const blocked = path.join(dir('corolla-pglite-blocked-'), 'a-file');
    fs.writeFileSync(blocked, 'not a directory');
    const database = await open(dir('corolla-pglite-d-'), blocked);
    expect(await tables(database)).toEqual(['node_contributions', 'receipt_outbox', 'requests']);
    expect(fs.readFileSync(blocked, 'utf8')).toBe('not a directory');
  }, 120_000);
});
