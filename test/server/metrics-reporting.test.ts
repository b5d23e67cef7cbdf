/**
 * The metrics service against a real OracleService over HTTP: it signs the server's own NodeMetrics, keeps them in
 * its outbox file while the oracle is down (across a restart), sends them once it is up, and cuts periods at epoch
 * boundaries so the oracle takes every one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { TypedEventEmitter } from 'main-event';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BlockServerEvents } from '../../src/server/events.js';
import { METRICS_OUTBOX_FILE, MetricsReporting } from '../../src/server/services/metrics.js';
import type { ServiceHost } from '../../src/server/services/types.js';
import { createOracleApp } from '../../src/oracle/app.js';
import { silentLogger } from '../../src/util/logger.js';
import { tempDir } from '../support/files.js';
import { CHAIN_ID, EPOCH_MS, GENESIS, POOL, harness, receipt, servers, signedReceipt, type Harness } from '../oracle/fixtures.js';
import { freePort } from '../../src/util/processes.js';

const server = servers[0];
let h: Harness;
let port: number;
let http: ServerType | undefined;

class FakeHost extends TypedEventEmitter<BlockServerEvents> {
  readonly peerId = '12D3KooWmetrics';
  readonly logger = silentLogger;
  closeSession(tokens: number, steps: number, durationMs: number): void {
    this.safeDispatchEvent('session:close', { detail: { sessionId: `s${tokens}`, peerId: 'client', blocks: { start: 0, end: 4 }, maxLength: 128, tokens, reason: 'closed', steps, durationMs } });
  }
}

beforeAll(async () => {
  h = await harness();
  port = await freePort();
});
afterAll(async () => {
  http?.close();
  await h?.close();
});

it('signs metrics, keeps them across a restart while the oracle is down, sends them once it is up, and never spans two epochs', { timeout: 120_000 }, async () => {
  const dataDir = tempDir('corolla-metrics-');
  const host = new FakeHost();
  const reporter = (start: number) => {
    const r = new MetricsReporting(host as unknown as ServiceHost, { account: server, chainId: CHAIN_ID, rewardPool: POOL, oracleUrl: `http://127.0.0.1:${port}`, epoch: { genesisMs: GENESIS, durationMs: EPOCH_MS }, dataDir, intervalMs: 60_000, now: () => h.clock.now });
    h.clock.now = start;
    r.start();
    return r;
  };
  // the payer's receipt for the 30 tokens the server will claim, so its metrics are not flagged
  await h.service.acceptReceipts([await signedReceipt(receipt(server.address, { issuedAt: BigInt(GENESIS + 2 * 60_000) }))]);

  const first = reporter(GENESIS + 60_000);
  host.closeSession(30, 20, 400);
  h.clock.now = GENESIS + 3 * 60_000;
  expect(await first.flush()).toBe(false); // nothing listens on the port yet
  expect(first.pending).toBe(1);
  h.clock.now = GENESIS + 4 * 60_000;
  await first.stop(); // signs the last (empty) period; the oracle is still down
  const outbox = JSON.parse(fs.readFileSync(path.join(dataDir, METRICS_OUTBOX_FILE), 'utf8'));
  expect(outbox).toHaveLength(2);
  expect(outbox[0].message).toMatchObject({ server: server.address, tokensServed: '30', sessions: 1, meanStepLatencyUs: '20000', uptimeSeconds: '120' });

  // restarted, with the oracle up: the outbox from before goes first
  http = serve({ fetch: createOracleApp(h.service).fetch, port, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => http!.once('listening', resolve));
  const second = reporter(GENESIS + 5 * 60_000);
  expect(second.pending).toBe(2);
  // a period across the epoch boundary is signed from the boundary on
  h.clock.now = GENESIS + EPOCH_MS + 60_000;
  expect(await second.flush()).toBe(true);
  expect(second.pending).toBe(0);
  expect(JSON.parse(fs.readFileSync(path.join(dataDir, METRICS_OUTBOX_FILE), 'utf8'))).toEqual([]);
  await second.stop();

  const stored = [...(await h.store.metrics(0)), ...(await h.store.metrics(1))];
  expect(stored.map((m) => [m.periodStart - GENESIS, m.periodEnd - GENESIS, Number(m.tokensServed)])).toEqual([
    [60_000, 3 * 60_000, 30],
    [3 * 60_000, 4 * 60_000, 0],
    [EPOCH_MS, EPOCH_MS + 60_000, 0],
  ]);
  expect((await h.service.epochReport(0n)).flagged).toEqual([]);
  // the oracle's rewards answer now shows its uptime (from the latest metrics) and its receipts
  expect(await h.service.serverStats(server.address)).toEqual({ tasksCompleted: 1, uptimeSeconds: (EPOCH_MS + 60_000 - 5 * 60_000) / 1000 });
});
