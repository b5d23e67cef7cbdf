/** `corolla ledger export` on an embedded (PGlite) ledger: CSV to stdout, JSON to a file, and its usage errors. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLedger } from '../../src/gateway/ledger/index.js';
import { runCorolla } from '../support/cli.js';
import { tempDir } from '../support/files.js';
import { pgliteDataDir } from '../support/ledger.js';

describe('corolla ledger export', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await pgliteDataDir();
    const ledger = await openLedger({ dataDir });
    const common = { api: 'chat.completions', apiKeyId: 'key-1', wallet: null, model: 'smollm2', gatewayId: 'gw', promptTokens: 5 } as const;
    await ledger.begin({ ...common, id: 'req-old', startedAt: new Date('2026-01-01T00:00:00Z') });
    await ledger.begin({ ...common, id: 'req-in', startedAt: new Date('2026-02-01T00:00:00Z') });
    await ledger.finish('req-in', {
      completionTokens: 6,
      costUnits: 600_000_000_000_000n,
      firstTokenAt: new Date('2026-02-01T00:00:00.100Z'),
      status: 'completed',
      error: null,
      endedAt: new Date('2026-02-01T00:00:01Z'),
      contributions: [
        { peerId: 'peer-a', ethAddress: '0xaa', blockStart: 0, blockEnd: 30, promptTokens: 5, generatedTokens: 2, replayedTokens: 0, failed: true },
        { peerId: 'peer-b', ethAddress: null, blockStart: 0, blockEnd: 30, promptTokens: 0, generatedTokens: 4, replayedTokens: 7, failed: false },
      ],
    });
    await ledger.close();
  });
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('writes CSV rows for the requests started in the window, one per contribution', async () => {
    const { code, stdout, stderr } = await runCorolla(['ledger', 'export', '--since', '2026-01-15', '--until', '2026-03-01T00:00:00Z', '--data-dir', dataDir]);
    expect(code, stderr).toBe(0);
    expect(stdout.split('\r\n')).toEqual([
      'request_id,started_at,ended_at,model,api_key_id,wallet,status,peer_id,eth_address,block_start,block_end,prompt_tokens,generated_tokens,replayed_tokens,failed,request_cost_far',
      'req-in,2026-02-01T00:00:00.000Z,2026-02-01T00:00:01.000Z,smollm2,key-1,,completed,peer-a,0xaa,0,30,5,2,0,true,0.0006',
      'req-in,2026-02-01T00:00:00.000Z,2026-02-01T00:00:01.000Z,smollm2,key-1,,completed,peer-b,,0,30,0,4,7,false,0.0006',
      '',
    ]);
    expect(stderr).toMatch(/exported 1 requests \(2 rows\)/);
  });

  it('writes JSON to --out with money as decimal strings', async () => {
    const out = path.join(dataDir, 'usage.json');
    const { code, stdout, stderr } = await runCorolla(['ledger', 'export', '--since', '2025-12-31T00:00:00Z', '--format', 'json', '--out', out, '--data-dir', dataDir]);
    expect(code, stderr).toBe(0);
    expect(stdout).toBe('');
    const entries = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(entries.map((e: { request: { id: string } }) => e.request.id)).toEqual(['req-old', 'req-in']);
    expect(entries[0]).toEqual({
      request: expect.objectContaining({ id: 'req-old', status: 'running', cost_units: '0', cost_far: '0', ended_at: null }),
      node_contributions: [],
    });
    expect(entries[1].request).toMatchObject({ cost_units: '600000000000000', cost_far: '0.0006', completion_tokens: 6, first_token_at: '2026-02-01T00:00:00.100Z' });
    expect(entries[1].node_contributions.map((c: { peer_id: string; generated_tokens: number }) => [c.peer_id, c.generated_tokens])).toEqual([
      ['peer-a', 2],
      ['peer-b', 4],
    ]);
  });

  it('requires --since and a ledger location, and documents both in --help', async () => {
    // none of these opens the ledger, so they can run at once
    const [help, noSince, noLocation, badDate] = await Promise.all([
      runCorolla(['ledger', 'export', '--help']),
      runCorolla(['ledger', 'export', '--data-dir', dataDir]),
      runCorolla(['ledger', 'export', '--since', '2026-01-01'], { env: { DATABASE_URL: '', COROLLA_DATA_DIR: tempDir('corolla-no-ledger-') } }),
      runCorolla(['ledger', 'export', '--since', 'yesterday', '--data-dir', dataDir]),
    ]);
    expect(help.stdout).toMatch(/--since ISO\s+start time, inclusive; required/);
    expect(noSince.code).toBe(1);
    expect(noSince.stderr).toMatch(/--since is required/);
    expect(noLocation.code).toBe(1);
    expect(noLocation.stderr).toMatch(/no ledger in .*corolla-no-ledger-.*give --data-dir or --database-url/);
    expect(badDate.stderr).toMatch(/--since must be an ISO date/);
  });
});
