import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOracleApp } from '../../src/oracle/app.js';
import { MAX_BODY_BYTES } from '../../src/oracle/defaults.js';
import { EPOCH_MS, GENESIS, harness, metrics, receipt, servers, signedMetrics, signedReceipt, type Harness } from './fixtures.js';

describe('the oracle HTTP API', { timeout: 60_000 }, () => {
  let h: Harness;
  let app: ReturnType<typeof createOracleApp>;
  const post = (path: string, body: string) => app.request(path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  beforeAll(async () => {
    h = await harness();
    app = createOracleApp(h.service);
  });
  afterAll(async () => h.close());

  it('answers health', async () => {
    expect((await app.request('/health')).status).toBe(200);
  });

  it('takes receipts and metrics, answering accepted, duplicates and rejected', async () => {
    const signed = await signedReceipt(receipt(servers[0].address));
    const res = await post('/v1/receipts', JSON.stringify({ receipts: [signed, signed, { bad: true }] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ accepted: 1, duplicates: 1, rejected: [{ index: 2, reason: expect.stringMatching(/^malformed/) }] });
    const m = await post('/v1/metrics', JSON.stringify({ metrics: [await signedMetrics(metrics(servers[0].address, { tokensServed: 30n }))] }));
    expect(await m.json()).toEqual({ accepted: 1, duplicates: 0, rejected: [], flagged: [] });
  });

  it('answers 4xx with a reason to malformed and oversized bodies', async () => {
    const cases: Array<[string, string, number, RegExp]> = [
      ['/v1/receipts', '{not json', 400, /not JSON/],
      ['/v1/receipts', '[]', 400, /\{"receipts"/],
      ['/v1/receipts', '{"receipts": 5}', 400, /\{"receipts"/],
      ['/v1/metrics', 'null', 400, /\{"metrics"/],
      ['/v1/receipts', JSON.stringify({ receipts: new Array(501).fill(0) }), 413, /at most 500/],
      ['/v1/receipts', JSON.stringify({ receipts: ['x'.repeat(MAX_BODY_BYTES)] }), 413, /larger than/],
    ];
    for (const [path, body, status, message] of cases) {
      const res = await post(path, body);
      expect(res.status, body.slice(0, 40)).toBe(status);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(message);
    }
    expect((await app.request('/v1/epochs/-1')).status).toBe(400);
    expect((await app.request('/v1/rewards/0x123')).status).toBe(400);
  });

  it('serves an epoch (open, then closed with proofs) and a node’s claimable rewards, bigints as strings', async () => {
    const open = (await (await app.request('/v1/epochs/0')).json()) as { status: string; totalContribution: string };
    expect(open).toMatchObject({ status: 'open', totalContribution: '69' });
    h.clock.now = GENESIS + EPOCH_MS + 5 * 60_000;
    await h.service.closeEpoch(0n);
    const closed = (await (await app.request('/v1/epochs/0')).json()) as Record<string, unknown>;
    expect(closed).toMatchObject({ status: 'reported', budget: String(h.pool.budget), totalRewards: String(h.pool.budget), dust: '0', nodes: [{ amount: String(h.pool.budget), proof: [] }] });
    const rewards = (await (await app.request(`/v1/rewards/${servers[0].address}`)).json()) as { claimable: unknown[] };
    expect(rewards.claimable).toEqual([{ epoch: '0', amount: String(h.pool.budget), contribution: '69', proof: [] }]);
    // one receipt names it; its latest metrics report 540 s of uptime
    expect(rewards).toMatchObject({ tasksCompleted: 1, uptimeSeconds: 540 });
    expect(await (await app.request(`/v1/rewards/${servers[1].address}`)).json()).toEqual({ address: servers[1].address.toLowerCase(), claimable: [], tasksCompleted: 0 });
  });
});
