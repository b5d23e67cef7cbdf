/**
 * Spot-checks with real block servers: a server that returns wrong hidden states (noise of 1 % of the row's rms, or
 * a skipped block) is caught by the replay on another server, confirmed by a third, banned, and reported with two
 * verifiable signed replies; honest servers under batching, f16 on the wire and failover are never flagged.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EvidenceReporter } from '../../src/gateway/receipts/evidence.js';
import { createOracleApp } from '../../src/oracle/app.js';
import { silentLogger } from '../../src/util/logger.js';
import { CHAIN_ID, EPOCH_MS, GENESIS, POOL, harness, payer, receipt, servers, signedReceipt } from '../oracle/fixtures.js';
import { SwarmInferenceSession } from '../../src/client/inference-session.js';
import { RemoteModel, type RemoteModelOptions } from '../../src/client/remote-model.js';
import type { SpotCheckEvidence } from '../../src/client/spot-check.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { DEVIATION_TOLERANCE, rowDeviation, tensorDigest, verifyAttestation } from '../../src/wire/attestation.js';
import { perturbOutputs, skippingSource } from '../support/cheats.js';
import { startFakeSwarm, type FakeServer } from '../support/fake-server.js';
import { STORIES_GGUF } from '../support/models.js';
import { FAST, startTestSwarm, type TestSwarm } from '../support/swarm.js';

let source: LoadedModelSource;
let swarm: TestSwarm | undefined;
let model: RemoteModel | undefined;

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
});

afterEach(async () => {
  await model?.close();
  model = undefined;
  await swarm?.stop();
  swarm = undefined;
});

afterAll(() => source?.close());

const WHOLE = { start: 0, end: 5 };

async function openClient(s: TestSwarm, extra: Partial<RemoteModelOptions> = {}): Promise<RemoteModel> {
  return RemoteModel.open(
    { model: STORIES_GGUF, modelId: s.modelId, registryOptions: FAST, coverageTimeoutMs: 60_000, stepTimeoutMs: 20_000, spotCheck: { rate: 1 }, ...extra },
    { node: await s.client() },
  );
}

async function caught(cheat: 'noise' | 'skip'): Promise<void> {
  // server 0 is the cheater, and claims to be the fastest so that routes go through it; each has a bound address
  swarm = await startTestSwarm(
    source,
    [WHOLE, WHOLE, WHOLE],
    (i) => ({ computeThroughput: i === 0 ? 5_000 : 1_000 }),
    (i) => ({ ethAccount: servers[i]!, ...(i === 0 && cheat === 'skip' ? { source: skippingSource(source, 2) } : {}) }),
  );
  // a real oracle service on a local port, and the gateway's reporter signing as its known payer
  const oracle = await harness();
  oracle.clock.now = GENESIS + 30 * 60_000;
  const http: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: createOracleApp(oracle.service).fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
  });
  const oracleUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const reporter = new EvidenceReporter({ log: silentLogger.forComponent('test'), now: () => oracle.clock.now }, { account: payer, chainId: CHAIN_ID, rewardPool: POOL, oracleUrl });
  try {
    await caughtAndReported(cheat, reporter, oracle);
  } finally {
    reporter.close();
    await new Promise((resolve) => http.close(resolve));
    await oracle.close();
  }
}

async function caughtAndReported(cheat: 'noise' | 'skip', reporter: EvidenceReporter, oracle: Awaited<ReturnType<typeof harness>>): Promise<void> {
  swarm = swarm!;
  const cheater = swarm.servers[0]!.server;
  if (cheat === 'noise') perturbOutputs(cheater.span, 0.01);
  model = await openClient(swarm);
  const failed: SpotCheckEvidence[] = [];
  const other: unknown[] = [];
  model.addEventListener('spot-check:failed', (event) => failed.push(event.detail));
  model.addEventListener('spot-check:failed', (event) => reporter.report(event.detail));
  model.addEventListener('spot-check:skipped', (event) => other.push(event.detail));
  model.addEventListener('spot-check:disputed', (event) => other.push(event.detail));

  // whether the cheater serves the route or is picked as the checker, a check of a session it took part in catches it
  // (a route through an honest server checked by the other honest one passes): generate until that happens
  for (let i = 0; i < 8 && failed.length === 0; i++) {
    expect((await model.text('Once upon a time', { maxTokens: 6, temperature: 0 })).length).toBeGreaterThan(0);
    await model.spotChecker!.drain();
  }
  expect(failed, JSON.stringify({ other, stats: model.spotChecker!.stats })).toHaveLength(1);
  const evidence = failed[0]!;
  expect(evidence.suspect.peerId).toBe(cheater.peerId);
  expect(evidence.checker.peerId).not.toBe(cheater.peerId);
  expect(evidence.deviation).toBeGreaterThan(DEVIATION_TOLERANCE.f32);
  expect(model.bans.isBanned(cheater.peerId)).toBe(true);

  // the evidence verifies for anyone: both signatures, the same input history, and outputs that are the signed ones
  const { suspect, checker } = evidence;
  expect(await verifyAttestation(suspect.peerId, suspect.claim, suspect.signature)).toBe(true);
  expect(await verifyAttestation(checker.peerId, checker.claim, checker.signature)).toBe(true);
  expect(suspect.claim.history).toBe(checker.claim.history);
  expect([suspect.claim.position, suspect.claim.tokens]).toEqual([checker.claim.position, checker.claim.tokens]);
  expect(tensorDigest(suspect.output)).toBe(suspect.claim.output);
  expect(tensorDigest(checker.output)).toBe(checker.claim.output);
  expect(rowDeviation(suspect.output, checker.output, source.config.hiddenSize)).toBe(evidence.deviation);

  // banned: the next generation goes around it and is not flagged again
  const routes: string[][] = [];
  model.addEventListener('route', (event) => routes.push(event.detail.map((hop) => hop.peerId)));
  await model.text('Once upon a time', { maxTokens: 4, temperature: 0 });
  await model.spotChecker!.drain();
  expect(routes.flat()).not.toContain(cheater.peerId);
  expect(failed).toHaveLength(1);
  expect(model.spotChecker!.stats.passed).toBeGreaterThanOrEqual(1);

  // reported: the oracle verified and stored the evidence, and the cheater gets nothing for the epoch
  await reporter.settled();
  const addresses = servers.map((a) => a.address.toLowerCase() as `0x${string}`);
  const [stored] = await oracle.store.evidence(0);
  expect(stored).toMatchObject({ suspect: addresses[0], suspectPeerId: cheater.peerId });
  await oracle.service.acceptReceipts(await Promise.all(addresses.map((a) => signedReceipt(receipt(a)))));
  oracle.clock.now = GENESIS + EPOCH_MS + 10 * 60_000;
  const closed = await oracle.service.closeEpoch(0n);
  expect(closed.excluded).toEqual([addresses[0]]);
  expect(closed.nodes.map((n) => n.address).sort()).toEqual([addresses[1], addresses[2]].sort());
}

describe('step attestations', () => {
  it.each(['unsigned', 'bad-attestation'] as const)('a reply %s is the server\'s fault: banned, and the session fails over', async (kind) => {
    const fake = await startFakeSwarm(source, [{ start: 0, end: 5, compute: 500 }, { start: 0, end: 5, compute: 100 }]);
    try {
      const [flaky, backup] = fake.servers as [FakeServer, FakeServer];
      flaky.fault = { kind, atStep: 3 };
      const session = await SwarmInferenceSession.open({ node: fake.client.libp2p, source: { records: async () => fake.records }, numBlocks: 5, hiddenSize: source.config.hiddenSize, maxLength: 16, stepTimeoutMs: 20_000 });
      expect(session.route.map((hop) => hop.peerId)).toEqual([flaky.peerId]);
      const H = source.config.hiddenSize;
      for (let i = 0; i < 5; i++) await session.step(new Float32Array(H).fill(0.1 * (i + 1)), 1);
      expect(flaky.faultsFired).toEqual([kind]);
      expect(session.stats.banned).toEqual([flaky.peerId]);
      expect(session.stats.failures).toBe(1);
      expect(session.route.map((hop) => hop.peerId)).toEqual([backup.peerId]);
      await session.close();
    } finally {
      await fake.stop();
    }
  }, 120_000);
});

describe('spot-checks', () => {
  it('catch a server that adds 1 % noise to its outputs: banned, with signed evidence', () => caught('noise'), 300_000);

  it('catch a server that skips a block', () => caught('skip'), 300_000);

  it('never flag honest servers: concurrent sessions batched together, f32 and f16 on the wire', async () => {
    swarm = await startTestSwarm(source, [{ start: 0, end: 3 }, { start: 0, end: 3 }, { start: 3, end: 5 }, { start: 3, end: 5 }], () => ({ maxBatch: 8, batchWindowMs: 5 }));
    for (const codec of ['f32', 'f16'] as const) {
      model = await openClient(swarm, { codec });
      const prompts = ['Once upon a time', 'The cat', 'Lily went', 'One day', 'Tom and Sue', 'The sun'];
      const texts = await Promise.all(prompts.map((prompt) => model!.text(prompt, { maxTokens: 12, temperature: 0 })));
      expect(texts.every((text) => text.length > 0)).toBe(true);
      await model.spotChecker!.drain();
      const stats = model.spotChecker!.stats;
      // every session's two hops were checked, and all passed
      expect(stats.passed).toBe(2 * prompts.length);
      expect([stats.failed, stats.disputed, stats.skipped]).toEqual([0, 0, 0]);
      expect(stats.maxPassedDeviation).toBeLessThan(DEVIATION_TOLERANCE[codec] / 10);
      console.log(`honest ${codec}: ${stats.passed} checks, ${stats.replayedSteps} steps replayed, max deviation ${stats.maxPassedDeviation.toExponential(2)}`);
      await model.close();
      model = undefined;
    }
  }, 180_000);

  it('never flag honest servers across a failover (a server killed mid-generation)', async () => {
    swarm = await startTestSwarm(source, [WHOLE, WHOLE, WHOLE], (i) => ({ computeThroughput: i === 0 ? 5_000 : 1_000 }));
    model = await openClient(swarm);
    const victim = swarm.servers[0]!.server.peerId;
    let tokens = 0;
    for await (const _ of model.generate('Once upon a time', { maxTokens: 16, temperature: 0 })) {
      if (++tokens === 5) await swarm.kill(victim);
    }
    await model.spotChecker!.drain();
    const stats = model.spotChecker!.stats;
    expect(stats.passed).toBe(1);
    expect([stats.failed, stats.disputed]).toEqual([0, 0]);
  }, 120_000);
});
