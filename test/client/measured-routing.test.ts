/**
 * Sybil resistance on the client: servers are judged by what the client measures (its own step timings, ping round
 * trips, open answers), not by their records' claims beyond first contact; a directory lookup has one deadline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwarmDirectory } from '../../src/client/directory.js';
import { SwarmInferenceSession, type RouteSource } from '../../src/client/inference-session.js';
import { ServerMeasurements } from '../../src/client/measurements.js';
import type { PlannerRecord } from '../../src/client/route-planner.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import type { Registry } from '../../src/swarm/registry/index.js';
import type { SwarmNode } from '../../src/swarm/node.js';
import { startFakeSwarm, type FakeServer, type FakeSwarm } from '../support/fake-server.js';
import { STORIES_GGUF } from '../support/models.js';

let source: LoadedModelSource;
let swarm: FakeSwarm;
let client: SwarmNode;
let servers: FakeServer[];
let records: PlannerRecord[];

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  // first [0,2); liar [2,4) claims 1e9 tok/s and answers 40 ms late; honest [2,4) claims 50 tok/s; last [4,5)
  const layout: [number, number, number][] = [[0, 2, 100], [2, 4, 1e9], [2, 4, 50], [4, 5, 100]];
  swarm = await startFakeSwarm(source, layout.map(([start, end, compute]) => ({ start, end, compute })));
  servers = swarm.servers;
  servers[1]!.fault = { kind: 'slow-steps', atStep: 40 };
  records = swarm.records;
  client = swarm.client;
});

afterAll(async () => {
  await swarm?.stop();
  source?.close();
});

describe('measured routing', () => {
  it('a record claiming 1e9 tok/s wins the first route only: measured slow, it loses the next', async () => {
    const measurements = new ServerMeasurements();
    const route: RouteSource = { records: async () => records };
    const H = source.config.hiddenSize;
    const open = () => SwarmInferenceSession.open({ node: client.libp2p, source: route, numBlocks: 5, hiddenSize: H, maxLength: 32, measurements });
    const [, liar, honest] = servers as [FakeServer, FakeServer, FakeServer];
    const session = await open();
    expect(session.route[1]!.peerId).toBe(liar.peerId); // first contact: the claim is believed
    await session.step(new Float32Array(3 * H).fill(0.1), 3);
    for (let i = 0; i < 4; i++) await session.step(new Float32Array(H).fill(0.1), 1);
    await session.close();
    expect(measurements.measured(liar.peerId)).toBe(true);
    const next = await open();
    expect(next.route[1]!.peerId).toBe(honest.peerId);
    await next.close();
  });

  it('once measured, a record\'s load is ignored (it is in the timings) and its cache is capped by the open answer', () => {
    const m = new ServerMeasurements();
    const record: PlannerRecord = { ...records[2]!, load: { activeSessions: 0, queuedSteps: 1_000 }, cacheTokensLeft: 1e9 };
    expect(m.adjust(record)).toBe(record); // first contact: taken at its word
    m.recordStep(record.peerId, 2, 12);
    m.recordStep(record.peerId, 2, 10);
    m.recordStep(record.peerId, 2, 1_000); // one outlier does not move the median
    m.recordOpen(record.peerId, 500);
    const adjusted = m.adjust(record);
    expect(adjusted.load).toEqual({ activeSessions: 0, queuedSteps: 0 });
    expect(adjusted.cacheTokensLeft).toBe(500);
    // median of ms / blocks = 6 ms per block; the span has 2 blocks → 1000 / 12 tok/s
    expect(adjusted.throughput.compute).toBeCloseTo(1000 / 12, 6);
    expect(adjusted.throughput.effective).toBeCloseTo(1000 / 12, 6);
  });
});

describe('directory lookups', () => {
  it('have one overall deadline: a lookup that never answers leaves the cached view in time', async () => {
    const registry = { lookup: () => new Promise(() => {}) } as unknown as Registry;
    const directory = new SwarmDirectory({ node: {} as SwarmNode, registry }, 'model', 5, { lookupDeadlineMs: 200 });
    const started = performance.now();
    expect(await directory.records({ fresh: true })).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2_000);
  }, 3_000);
});
