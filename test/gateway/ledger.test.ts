/**
 * The usage ledger on both backends: embedded PGlite and a real PostgreSQL server (COROLLA_TEST_DATABASE_URL).
 * One ledger per backend serves most tests (each uses its own request ids); recovery and persistence get fresh ones.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerError, RequestIdTakenError, UnknownRequestError } from '../../src/gateway/errors.js';
import { LedgerLockedError, openLedger } from '../../src/gateway/ledger/index.js';
import type { Ledger, NewRequest, NodeContribution, UsageEntry } from '../../src/gateway/types.js';
import { pgliteBackend, postgresBackend, type LedgerBackend } from '../support/ledger.js';

function newRequest(overrides: Partial<NewRequest> = {}): NewRequest {
  return {
    id: `req-${randomUUID()}`,
    api: 'chat.completions',
    apiKeyId: 'key-1',
    wallet: '0x00000000000000000000000000000000000000aa',
    model: 'smollm2-135m',
    gatewayId: 'gw-a',
    promptTokens: 12,
    startedAt: new Date('2026-01-02T03:04:05.678Z'),
    ...overrides,
  };
}

function contribution(peerId: string, blockStart: number, blockEnd: number, counts: Partial<NodeContribution> = {}): NodeContribution {
  return { peerId, ethAddress: null, blockStart, blockEnd, promptTokens: 12, generatedTokens: 0, replayedTokens: 0, failed: false, ...counts };
}

describe.each([
  { name: 'pglite', make: pgliteBackend },
  { name: 'postgres', make: postgresBackend },
])('the ledger on $name', ({ name, make }) => {
  let backend: LedgerBackend;
  let ledger: Ledger;

  beforeAll(async () => {
    backend = make();
    ledger = await backend.open();
  });
  afterAll(() => backend?.cleanup());

  it('records a request from begin through progress to finish', async () => {
    const request = newRequest();
    await ledger.begin(request);
    expect((await ledger.get(request.id))?.request).toEqual({
      ...request,
      completionTokens: 0,
      costUnits: 0n,
      status: 'running',
      error: null,
      firstTokenAt: null,
      endedAt: null,
    });

    const firstTokenAt = new Date('2026-01-02T03:04:06.001Z');
    await ledger.progress(request.id, { completionTokens: 2, costUnits: 200n, firstTokenAt, contributions: [contribution('peer-a', 0, 30, { generatedTokens: 2 })] });
    let entry = await ledger.get(request.id);
    expect(entry?.request).toMatchObject({ status: 'running', completionTokens: 2, costUnits: 200n, firstTokenAt });
    expect(entry?.contributions).toEqual([contribution('peer-a', 0, 30, { generatedTokens: 2 })]);

    const endedAt = new Date('2026-01-02T03:04:09.5Z');
    await ledger.finish(request.id, {
      completionTokens: 5,
      costUnits: 500n,
      firstTokenAt: null, // a later write without it keeps the first token's time
      contributions: [contribution('peer-a', 0, 30, { generatedTokens: 5, ethAddress: '0x00000000000000000000000000000000000000bb' })],
      status: 'failed',
      error: 'GENERATE_STREAM: the server went away',
      endedAt,
    });
    entry = await ledger.get(request.id);
    expect(entry?.request).toEqual({ ...request, completionTokens: 5, costUnits: 500n, status: 'failed', error: 'GENERATE_STREAM: the server went away', firstTokenAt, endedAt });
    expect(entry?.contributions).toEqual([contribution('peer-a', 0, 30, { generatedTokens: 5, ethAddress: '0x00000000000000000000000000000000000000bb' })]);
    expect(await ledger.get('req-none')).toBeUndefined();
  });

  it('keeps money exact: 10^20 units, 1 unit, and a uint256-sized amount', async () => {
    for (const costUnits of [10n ** 20n, 1n, 2n ** 255n + 7n]) {
      const request = newRequest();
      await ledger.begin(request);
      await ledger.finish(request.id, { completionTokens: 1, costUnits, firstTokenAt: null, contributions: [], status: 'completed', error: null, endedAt: new Date() });
      expect((await ledger.get(request.id))?.request.costUnits).toBe(costUnits);
    }
  });

  it('credits every server for what it served, including one that failed and was replaced', async () => {
    const request = newRequest({ promptTokens: 7, startedAt: new Date('2002-01-01T00:00:00Z') });
    await ledger.begin(request);
    // blocks 0-15 on A, 15-30 on B; B fails after 3 tokens and C takes over its blocks, replaying prompt + 3 tokens
    await ledger.progress(request.id, {
      completionTokens: 3,
      costUnits: 3n,
      firstTokenAt: new Date(),
      contributions: [contribution('peer-a', 0, 15, { promptTokens: 7, generatedTokens: 3 }), contribution('peer-b', 15, 30, { promptTokens: 7, generatedTokens: 3 })],
    });
    const final = [
      contribution('peer-a', 0, 15, { promptTokens: 7, generatedTokens: 10 }),
      contribution('peer-b', 15, 30, { promptTokens: 7, generatedTokens: 3, failed: true }),
      contribution('peer-c', 15, 30, { promptTokens: 0, generatedTokens: 7, replayedTokens: 10 }),
    ];
    await ledger.finish(request.id, { completionTokens: 10, costUnits: 10n, firstTokenAt: null, contributions: final, status: 'completed', error: null, endedAt: new Date() });

    const entries = await ledger.list({ since: request.startedAt, until: new Date(request.startedAt.getTime() + 1) });
    expect(entries.map((e) => e.request.id)).toEqual([request.id]);
    const [entry] = entries;
    expect(entry!.contributions).toEqual(final);
    // every block range served every completion token and the prompt exactly once, across the servers that held it
    for (const [start, end] of [[0, 15], [15, 30]] as const) {
      const holders = entry!.contributions.filter((c) => c.blockStart === start && c.blockEnd === end);
      expect(holders.reduce((sum, c) => sum + c.generatedTokens, 0)).toBe(entry!.request.completionTokens);
      expect(holders.reduce((sum, c) => sum + c.promptTokens, 0)).toBe(entry!.request.promptTokens);
    }
  });

  it('refuses a duplicate request id and leaves the first record alone', async () => {
    const request = newRequest();
    await ledger.begin(request);
    await expect(ledger.begin({ ...request, model: 'other' })).rejects.toBeInstanceOf(RequestIdTakenError);
    expect((await ledger.get(request.id))?.request.model).toBe(request.model);
  });

  it('ignores progress and a second finish once a request has ended; an unknown id is an error', async () => {
    const request = newRequest();
    await ledger.begin(request);
    const endedAt = new Date('2026-01-02T03:05:00Z');
    await ledger.finish(request.id, { completionTokens: 4, costUnits: 40n, firstTokenAt: null, contributions: [contribution('peer-a', 0, 30, { generatedTokens: 4 })], status: 'stopped', error: null, endedAt });
    await ledger.progress(request.id, { completionTokens: 9, costUnits: 90n, firstTokenAt: new Date(), contributions: [contribution('peer-a', 0, 30, { generatedTokens: 9 }), contribution('peer-z', 0, 30)] });
    await ledger.finish(request.id, { completionTokens: 9, costUnits: 90n, firstTokenAt: null, contributions: [], status: 'completed', error: null, endedAt: new Date() });
    const entry = await ledger.get(request.id);
    expect(entry?.request).toMatchObject({ status: 'stopped', completionTokens: 4, costUnits: 40n, firstTokenAt: null, endedAt });
    expect(entry?.contributions).toEqual([contribution('peer-a', 0, 30, { generatedTokens: 4 })]);
    await expect(ledger.progress('req-unknown', { completionTokens: 1, costUnits: 1n, firstTokenAt: null, contributions: [] })).rejects.toBeInstanceOf(UnknownRequestError);
  });

  it('lists by start time, oldest first or newest first, with a limit', async () => {
    const base = Date.parse('2001-05-01T00:00:00Z');
    const ids = [0, 1, 2].map((i) => `list-${randomUUID()}-${i}`);
    for (const [i, id] of ids.entries()) await ledger.begin(newRequest({ id, startedAt: new Date(base + i * 1000) }));
    const window = { since: new Date(base), until: new Date(base + 3000) };
    expect((await ledger.list(window)).map((e) => e.request.id)).toEqual(ids);
    expect((await ledger.list({ ...window, newestFirst: true, limit: 2 })).map((e) => e.request.id)).toEqual([ids[2], ids[1]]);
    expect((await ledger.list({ since: new Date(base + 1000), until: new Date(base + 2000) })).map((e) => e.request.id)).toEqual([ids[1]]);
  });

  it('keeps signed receipts in the outbox until they are marked sent; adding one again changes nothing', async () => {
    const request = newRequest();
    await ledger.begin(request);
    const receipt = (server: string, blockStart: number, blockEnd: number, signature: string) => ({
      requestId: request.id,
      server,
      blockStart,
      blockEnd,
      message: { sessionId: request.id, server, blockStart, blockEnd, generatedTokens: '18446744073709551615' },
      signature,
    });
    const a = receipt('0x00000000000000000000000000000000000000a1', 0, 3, '0xaa');
    const b = receipt('0x00000000000000000000000000000000000000b2', 3, 5, '0xbb');
    await ledger.addReceipts([a, b]);
    await ledger.addReceipts([{ ...a, signature: '0xcc' }]); // the same request, server and blocks: the first one stays
    const mine = async () => (await ledger.pendingReceipts(1000)).filter((r) => r.requestId === request.id);
    const pending = await mine();
    expect(pending.map(({ id: _, ...r }) => r)).toEqual([a, b]);
    await ledger.markReceiptsSent([pending[0]!.id]);
    expect((await mine()).map((r) => r.signature)).toEqual(['0xbb']);
    await ledger.markReceiptsSent([pending[1]!.id]);
    expect(await mine()).toEqual([]);
    expect(await ledger.pendingReceipts(0)).toEqual([]);
  });

  it('writes a request’s receipts in the same transaction as its final row: both, or neither', async () => {
    const end = { completionTokens: 2, costUnits: 20n, firstTokenAt: null, contributions: [contribution('peer-a', 0, 3, { generatedTokens: 2 })], status: 'completed' as const, error: null, endedAt: new Date() };
    const receiptOf = (requestId: string, blockStart: unknown) => ({ requestId, server: '0x00000000000000000000000000000000000000a1', blockStart: blockStart as number, blockEnd: 3, message: { generatedTokens: '2' }, signature: '0xaa' });
    const mine = async (id: string) => (await ledger.pendingReceipts(1000)).filter((r) => r.requestId === id);

    const failing = newRequest();
    await ledger.begin(failing);
    await expect(ledger.finish(failing.id, end, [receiptOf(failing.id, 'not a number')])).rejects.toBeInstanceOf(LedgerError);
    expect((await ledger.get(failing.id))?.request.status).toBe('running'); // the final row rolled back with the receipt
    expect(await mine(failing.id)).toEqual([]);

    const ok = newRequest();
    await ledger.begin(ok);
    await ledger.finish(ok.id, end, [receiptOf(ok.id, 0)]);
    expect((await ledger.get(ok.id))?.request.status).toBe('completed');
    expect((await mine(ok.id)).map(({ id: _, ...r }) => r)).toEqual([receiptOf(ok.id, 0)]);
  });

  it('wraps a database failure in LedgerError, without SQL in its message', async () => {
    const request = newRequest();
    await ledger.begin(request);
    const error = await ledger.progress(request.id, { completionTokens: 1, costUnits: -1n, firstTokenAt: null, contributions: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LedgerError);
    expect((error as LedgerError).code).toBe('LEDGER_FAILED');
    expect((error as Error).message).not.toMatch(/update|insert|select|requests/i);
    expect((error as Error).cause).toBeDefined();
    expect((await ledger.get(request.id))?.request.costUnits).toBe(0n);
  });

  it('marks running requests interrupted: its own gateway’s, and other gateways’ gone silent', async () => {
    let clock = Date.parse('2026-03-01T12:00:00Z');
    const recovering = await backend.open({ now: () => new Date(clock) });
    const own = newRequest({ gatewayId: 'gw-a' });
    const stale = newRequest({ gatewayId: 'gw-dead' });
    const fresh = newRequest({ gatewayId: 'gw-alive' });
    const done = newRequest({ gatewayId: 'gw-a' });
    await recovering.begin(stale);
    await recovering.progress(stale.id, { completionTokens: 3, costUnits: 30n, firstTokenAt: new Date(clock), contributions: [contribution('peer-a', 0, 30, { generatedTokens: 3 })] });
    const staleWrite = new Date(clock);
    clock += 60_000;
    await recovering.begin(own);
    await recovering.begin(fresh);
    await recovering.begin(done);
    await recovering.finish(done.id, { completionTokens: 1, costUnits: 1n, firstTokenAt: null, contributions: [], status: 'completed', error: null, endedAt: new Date(clock) });
    const ownWrite = new Date(clock);
    clock += 10_000;

    // interrupted requests are signed for what their last write recorded, in the same transaction
    const signed: string[] = [];
    const sign = async (entry: UsageEntry) => {
      signed.push(entry.request.id);
      return entry.contributions.map((c) => ({ requestId: entry.request.id, server: '0x00000000000000000000000000000000000000a1', blockStart: c.blockStart, blockEnd: c.blockEnd, message: { generatedTokens: String(c.generatedTokens), issuedAt: String(entry.request.endedAt!.getTime()) }, signature: '0xaa' }));
    };
    expect(await recovering.recover({ gatewayId: 'gw-a', staleMs: 30_000, sign })).toBe(2);
    expect(signed.sort()).toEqual([stale.id]); // `own` recorded no contributions: nothing to sign
    expect((await recovering.pendingReceipts(1000)).filter((r) => r.requestId === stale.id).map((r) => r.message)).toEqual([{ generatedTokens: '3', issuedAt: String(staleWrite.getTime()) }]);
    expect((await recovering.get(own.id))?.request).toMatchObject({ status: 'interrupted', endedAt: ownWrite });
    expect((await recovering.get(stale.id))?.request).toMatchObject({ status: 'interrupted', endedAt: staleWrite, completionTokens: 3, costUnits: 30n });
    expect((await recovering.get(stale.id))?.contributions).toHaveLength(1);
    expect((await recovering.get(fresh.id))?.request).toMatchObject({ status: 'running', endedAt: null });
    expect((await recovering.get(done.id))?.request.status).toBe('completed');
    // an interrupted request stays as recorded, even if its gateway writes late
    await recovering.finish(stale.id, { completionTokens: 9, costUnits: 90n, firstTokenAt: null, contributions: [], status: 'completed', error: null, endedAt: new Date(clock) });
    expect((await recovering.get(stale.id))?.request.status).toBe('interrupted');
    expect(await recovering.recover({ gatewayId: 'gw-a', staleMs: 30_000 })).toBe(0);
  });

  if (name === 'pglite') {
    it('keeps its data across a reopen of the data directory, and refuses a second opener meanwhile', async () => {
      const { dataDir } = await backend.location();
      const first = await openLedger({ dataDir });
      const request = newRequest();
      await first.begin(request);
      await expect(openLedger({ dataDir })).rejects.toBeInstanceOf(LedgerLockedError);
      await first.close();
      const reopened = await openLedger({ dataDir });
      try {
        expect((await reopened.get(request.id))?.request).toMatchObject({ id: request.id, status: 'running' });
      } finally {
        await reopened.close();
      }
    });
  } else {
    it('lets several gateways open (and migrate) one new database at the same time', async () => {
      const location = await backend.location();
      const ledgers = await Promise.all([0, 1, 2].map(() => openLedger(location)));
      const request = newRequest();
      await ledgers[0]!.begin(request);
      expect((await ledgers[2]!.get(request.id))?.request.id).toBe(request.id);
      await Promise.all(ledgers.map((l) => l.close()));
    });
  }
});
