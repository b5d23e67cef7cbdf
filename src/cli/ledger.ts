/**
 * `corolla ledger export`: the usage ledger as CSV or JSON for the payment side. Data goes to stdout (or --out);
 * notices go to stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openLedger, usageCsvLines, usageJsonLines } from '../gateway/ledger/index.js';
import { defaultGatewayDataDir } from './env.js';
import { UsageError } from './errors.js';
import { parse } from './options.js';

const FORMATS = ['csv', 'json'] as const;

const USAGE = `usage: corolla ledger export --since ISO [--until ISO] [--format csv|json] [--out FILE]
                             [--database-url URL | --data-dir DIR]

Writes the requests that started in [--since, --until) with the servers that served them.

options:
  --since ISO            start time, inclusive; required (e.g. 2026-11-01 or 2026-11-01T00:00:00Z)
  --until ISO            end time, exclusive (default: now)
  --format csv|json      csv (default): one row per node contribution, joined with its request; the request's
                         cost (request_cost_far, decimal FAR) repeats on each of its rows.
                         json: an array of {request, node_contributions}, money as decimal strings.
  --out FILE             write there instead of stdout
  --database-url URL     the gateway's PostgreSQL database (default: $DATABASE_URL)
  --data-dir DIR         the gateway's data directory, for its embedded ledger (DIR/ledger; default: the
                         gateway's, \$COROLLA_DATA_DIR or ~/.corolla/gateway); the gateway must not be running,
                         as only one process may open it
  -h, --help             show this help`;

function dateOption(value: string | undefined, name: string): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new UsageError(`--${name} must be an ISO date or time, got "${value}"`);
  return date;
}

export async function run(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  if (!action || action === '--help' || action === '-h') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (action !== 'export') throw new UsageError(`unknown ledger action "${action}"\n\n${USAGE}`);
  const values = parse(
    rest,
    {
      since: { type: 'string' },
      until: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      'database-url': { type: 'string' },
      'data-dir': { type: 'string' },
    },
    USAGE,
  );
  const since = dateOption(values.since, 'since');
  if (!since) throw new UsageError(`--since is required\n\n${USAGE}`);
  const until = dateOption(values.until, 'until') ?? new Date();
  const format = values.format ?? 'csv';
  if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be ${FORMATS.join(' or ')}, got "${format}"`);
  if (values['database-url'] && values['data-dir']) throw new UsageError('give --database-url or --data-dir, not both');
  const databaseUrl = values['data-dir'] ? undefined : (values['database-url'] ?? process.env.DATABASE_URL);
  const dataDir = databaseUrl ? undefined : (values['data-dir'] ?? defaultGatewayDataDir());
  // an export never creates a ledger: a directory without one is a wrong path
  if (dataDir && !fs.existsSync(path.join(dataDir, 'ledger'))) {
    throw new UsageError(`no ledger in ${dataDir} (a gateway creates ${path.join(dataDir, 'ledger')} when it first starts); give --data-dir or --database-url (or DATABASE_URL)`);
  }

  const ledger = await openLedger({ databaseUrl, dataDir });
  try {
    const entries = await ledger.list({ since, until });
    const lines = format === 'csv' ? usageCsvLines(entries) : usageJsonLines(entries);
    await pipeline(Readable.from(lines), values.out ? fs.createWriteStream(values.out) : process.stdout, { end: Boolean(values.out) });
    const rows = entries.reduce((sum, entry) => sum + Math.max(1, entry.contributions.length), 0);
    process.stderr.write(
      `corolla ledger: exported ${entries.length} requests (${format === 'csv' ? `${rows} rows` : 'json'}) from ${since.toISOString()} to ${until.toISOString()}${values.out ? ` into ${values.out}` : ''}\n`,
    );
  } finally {
    await ledger.close();
  }
}
