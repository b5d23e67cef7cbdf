/**
 * The payer side of the incentives end to end: an in-process gateway signs a receipt per verified server per request
 * into its ledger's outbox and sends them to a real oracle (OracleService + its HTTP app on a local port, with a
 * fake registry and pool). Receipts wait in the outbox while the oracle is down, and a resend is only a duplicate.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createOracleApp } from '../../src/oracle/app.js';
import { CHAIN_ID, harness, POOL, type Harness } from '../oracle/fixtures.js';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { postJson } from '../support/http.js';
import { eventually, sleep } from '../support/wait.js';

const gatewayAccount = privateKeyToAccount(generatePrivateKey());
// servers 0 and 1 announce verified addresses; server 2 has no account, so nobody signs for its work
const serverAccounts = [privateKeyToAccount(generatePrivateKey()), privateKeyToAccount(generatePrivateKey())];
const DAY_MS = 86_400_000;

let oracle: Harness;
let oraclePort: number;
let oracleServer: ServerType | undefined;
let testGateway: TestGateway;
/** Set to make the oracle store a batch and then lose its answer (the gateway must send it again). */
let loseNextAnswer = false;
const answers: Array<{ accepted: number; duplicates: number; rejected: unknown[] }> = [];

function startOracle(): Promise<void> {
  const app = createOracleApp(oracle.service);
  return new Promise((resolve) => {
    oracleServer = serve(
      {
        fetch: async (request) => {
          const response = await app.fetch(request);
          if (new URL(request.url).pathname !== '/v1/receipts') return response;
          answers.push((await response.clone().json()) as (typeof answers)[number]);
          if (!loseNextAnswer) return response;
          loseNextAnswer = false;
          return new Response('bad gateway', { status: 502 });
        },
        port: oraclePort,
        hostname: '127.0.0.1',
      },
      () => resolve(),
    );
  });
}

async function stopOracle(): Promise<void> {
  const server = oracleServer;
  oracleServer = undefined;
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function complete(): Promise<string> {
  const response = await postJson(`${testGateway.url}/v1/completions`, { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 });
  expect(response.status).toBe(200);
  await response.json();
  return response.headers.get('x-request-id')!;
}

/** What the ledger says each verified server did for `requestId`, in the oracle's terms. */
async function expectedReceipts(requestId: string) {
  const entry = (await testGateway.ledger.get(requestId))!;
  expect(entry.request.status).toBe('completed');
  return entry.contributions
    .filter((c) => c.ethAddress !== null)
    .map((c) => ({ sessionId: requestId, server: c.ethAddress!.toLowerCase(), blockStart: c.blockStart, blockEnd: c.blockEnd, promptTokens: BigInt(c.promptTokens), generatedTokens: BigInt(c.generatedTokens), replayedTokens: BigInt(c.replayedTokens) }))
    .sort((a, b) => a.blockStart - b.blockStart);
}

async function oracleReceipts(requestId: string) {
  const rows = await oracle.store.receipts(oracle.service.currentEpoch());
  return rows
    .filter((r) => r.sessionId === requestId)
    .map((r) => ({ sessionId: r.sessionId, server: r.server, blockStart: r.blockStart, blockEnd: r.blockEnd, promptTokens: r.promptTokens, generatedTokens: r.generatedTokens, replayedTokens: r.replayedTokens }))
    .sort((a, b) => a.blockStart - b.blockStart);
}

beforeAll(async () => {
  // the oracle on the real clock, with a port chosen now and served only when a test starts it
  oracle = await harness({ payers: [gatewayAccount.address], genesisMs: 0, epochDurationMs: DAY_MS });
  Object.defineProperty(oracle.clock, 'now', { get: () => Date.now() });
  await startOracle();
  oraclePort = (oracleServer!.address() as AddressInfo).port;
  await stopOracle();
  testGateway = await startTestGateway({
    spans: [{ start: 0, end: 2 }, { start: 2, end: 3 }, { start: 3, end: 5 }],
    serverComponents: (i) => (serverAccounts[i] ? { ethAccount: serverAccounts[i] } : {}),
    settings: { receipts: { account: gatewayAccount, chainId: CHAIN_ID, rewardPool: POOL, oracleUrl: `http://127.0.0.1:${oraclePort}`, flushMs: 100 } },
  });
}, 120_000);

afterAll(async () => {
  await testGateway?.close();
  await stopOracle();
  await oracle?.close();
});

describe('receipts from the gateway to the oracle', () => {
  it('keeps receipts in the outbox while the oracle is down and sends them once it is up', async () => {
    const id = await complete();
    const expected = await expectedReceipts(id);
    // only the two verified servers, each with the gateway's own count
    expect(expected.map((r) => r.server).sort()).toEqual(serverAccounts.map((a) => a.address.toLowerCase()).sort());
    expect(expected.every((r) => r.promptTokens + r.generatedTokens > 0n)).toBe(true);
    await sleep(700); // a few failed rounds
    const pending = await testGateway.ledger.pendingReceipts(100);
    expect(pending.map((r) => r.requestId)).toEqual([id, id]);
    expect(await oracleReceipts(id)).toEqual([]);

    await startOracle();
    await eventually(async () => (await testGateway.ledger.pendingReceipts(100)).length === 0, 20_000, 100);
    expect(await oracleReceipts(id)).toEqual(expected);
  }, 60_000);

  it('the oracle holds exactly one receipt per verified server per request, with the ledger counts', async () => {
    const ids = [await complete(), await complete(), await complete()];
    await eventually(async () => (await testGateway.ledger.pendingReceipts(100)).length === 0, 10_000, 50);
    for (const id of ids) {
      const expected = await expectedReceipts(id);
      expect(expected).toHaveLength(2);
      expect(await oracleReceipts(id)).toEqual(expected);
    }
  }, 60_000);

  it('a batch whose answer is lost is sent again and counted once', async () => {
    const before = answers.length;
    loseNextAnswer = true;
    const id = await complete();
    await eventually(async () => (await testGateway.ledger.pendingReceipts(100)).length === 0, 20_000, 50);
    const sent = answers.slice(before);
    expect(sent[0]).toMatchObject({ accepted: 2, duplicates: 0, rejected: [] });
    expect(sent[1]).toMatchObject({ accepted: 0, duplicates: 2, rejected: [] });
    expect(await oracleReceipts(id)).toEqual(await expectedReceipts(id));
  }, 60_000);
});
