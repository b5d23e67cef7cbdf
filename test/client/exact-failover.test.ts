/**
 * Failover is exact or fails loudly: a replacement whose outputs differ (another engine rounds differently) makes the
 * client rewind and replay the downstream hops too; a downstream hop failing meanwhile ends the session with a typed
 * error; and a failed attempt closes every session it opened, even those whose open completes after the failure.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReplayDivergedError, SwarmUnavailableError } from '../../src/client/errors.js';
import { SwarmInferenceSession, type RouteSource } from '../../src/client/inference-session.js';
import type { PlannerRecord } from '../../src/client/route-planner.js';
import { loadEmbeddings, type EmbeddingTable } from '../../src/engine/embeddings.js';
import { loadLmHead } from '../../src/engine/lm-head.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { LmHead } from '../../src/engine/types.js';
import { argmax } from '../../src/inference/sampling/index.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import type { SwarmNode } from '../../src/swarm/node.js';
import { startFakeSwarm, type FakeServer, type FakeSwarm } from '../support/fake-server.js';
import { STORIES_GGUF } from '../support/models.js';
import { eventually, sleep } from '../support/wait.js';

const STEPS = 8;
const CPU_INT8 = 'ort-cpu/f32/act-int8';
const PROMPT = [1, 403, 407, 261, 378];
let source: LoadedModelSource;
let embeddings: EmbeddingTable;
let lmHead: LmHead;
let swarm: FakeSwarm;
let client: SwarmNode;
let first: FakeServer;
let flaky: FakeServer;
let other: FakeServer;
let last: FakeServer;
let fast: FakeServer;
let records: PlannerRecord[];

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  embeddings = loadEmbeddings(source);
  lmHead = await loadLmHead(source);
  // first [0,2); flaky [2,4) (fast, chosen first); other [2,4) (the replacement); last [4,5); fast [2,4) (faster than
  // other, but on another engine)
  const layout: [number, number, number][] = [[0, 2, 100], [2, 4, 500], [2, 4, 100], [4, 5, 100], [2, 4, 400]];
  const engines = [CPU_INT8, CPU_INT8, CPU_INT8, CPU_INT8, 'ort-cuda/f32/act-f32'];
  swarm = await startFakeSwarm(source, layout.map(([start, end, compute], i) => ({ start, end, compute, engine: engines[i] })));
  const { servers } = swarm;
  [first, flaky, other, last, fast] = servers as [FakeServer, FakeServer, FakeServer, FakeServer, FakeServer];
  records = swarm.records;
  client = swarm.client;
});

// Each test sets the faults it needs; none leaks into the next, even when a test fails midway.
afterEach(() => {
  for (const server of swarm.servers) server.fault = undefined;
});

afterAll(async () => {
  await swarm?.stop();
  source?.close();
});

const only = (...servers: FakeServer[]): RouteSource => ({ records: async () => records.filter((r) => servers.some((s) => s.peerId === r.peerId)) });

const open = (route: RouteSource, extra: Partial<Parameters<typeof SwarmInferenceSession.open>[0]> = {}) =>
  SwarmInferenceSession.open({ node: client.libp2p, source: route, numBlocks: 5, hiddenSize: source.config.hiddenSize, maxLength: 64, stepTimeoutMs: 2_000, ...extra });

/** The chain computed in this process, with the middle span's outputs scaled as the perturbing server does. */
async function localChain(scaleMiddle: number): Promise<(hidden: Float32Array) => Promise<Float32Array>> {
  const id = `local-${Math.random()}`;
  const [a, b, c] = [swarm.spans[0]!, swarm.spans[2]!, swarm.spans[3]!];
  for (const span of [a, b, c]) span.openSession(id, 64);
  return async (hidden) => {
    const x = await a.step({ sessionId: id, hidden });
    const y = (await b.step({ sessionId: id, hidden: x })).map((v) => v * scaleMiddle);
    return c.step({ sessionId: id, hidden: y });
  };
}

describe('exact failover', () => {
  it('a replacement whose outputs differ slightly: the downstream hop is rewound and replayed, output equals the new route computed locally', async () => {
    flaky.fault = { kind: 'error', atStep: 4 };
    other.fault = { kind: 'perturb', atStep: 1 };
    last.fault = undefined;
    const session = await open(only(first, flaky, other, last));
    expect(session.route.map((hop) => hop.peerId)).toEqual([first.peerId, flaky.peerId, last.peerId]);
    // before the failure (its 4th step) the route computes the old chain; from then on, the whole history as the new
    // route computes it
    const before = await localChain(1);
    const after = await localChain(1 + 1e-6);
    let ids = PROMPT;
    for (let i = 0; i < STEPS; i++) {
      const hidden = embeddings.embed(ids);
      const got = await lmHead.logits(await session.step(hidden, ids.length));
      const [old, now] = [await before(hidden), await after(hidden)];
      const want = await lmHead.logits(i < 3 ? old : now);
      expect(got, `logits of step ${i}`).toEqual(want);
      ids = [argmax(got)];
    }
    expect(session.route.map((hop) => hop.peerId)).toEqual([first.peerId, other.peerId, last.peerId]);
    expect(session.stats.failovers).toBe(1);
    expect(session.stats.replayMismatches).toBe(1);
    expect(session.stats.downstreamReplays).toBe(1);
    // the last hop replayed the 3 steps it had computed from the failed server's outputs
    expect(session.usage().find((u) => u.peerId === last.peerId)!.replayedTokens).toBe(PROMPT.length + 2);
    await session.close();
  });

  it('a downstream hop failing while it is rewound ends the session with ReplayDivergedError, never stale output', async () => {
    flaky.fault = { kind: 'error', atStep: 4 };
    other.fault = { kind: 'perturb', atStep: 1 };
    // last has computed 3 steps; the rewind replays them as its steps 4..6
    last.fault = { kind: 'error', atStep: 5 };
    const session = await open(only(first, flaky, other, last));
    let ids = PROMPT;
    for (let i = 0; i < 3; i++) ids = [argmax(await lmHead.logits(await session.step(embeddings.embed(ids), ids.length)))];
    const error = await session.step(embeddings.embed(ids), 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReplayDivergedError);
    expect((error as ReplayDivergedError).peerId).toBe(last.peerId);
    await expect(session.step(embeddings.embed(ids), 1)).rejects.toThrow(/failed earlier/);
    await session.close();
  });
});

describe('engine fingerprints', () => {
  it('failover picks the replacement with the failed hop\'s engine fingerprint over a cheaper one on another engine', async () => {
    flaky.fault = { kind: 'error', atStep: 3 };
    other.fault = undefined;
    last.fault = undefined;
    const session = await open(only(first, flaky, other, last, fast));
    expect(session.route.map((hop) => hop.peerId)).toEqual([first.peerId, flaky.peerId, last.peerId]);
    let ids = PROMPT;
    for (let i = 0; i < 5; i++) ids = [argmax(await lmHead.logits(await session.step(embeddings.embed(ids), ids.length)))];
    expect(session.route.map((hop) => hop.peerId)).toEqual([first.peerId, other.peerId, last.peerId]);
    expect(session.stats.replayMismatches).toBe(0);
    await session.close();
  });

  it('batched decode is bit-identical to single steps (so batching never breaks replay identity)', async () => {
    const span = await loadSpan(source, { start: 0, end: 5 }, { maxBatch: 8 });
    try {
      const H = source.config.hiddenSize;
      const row = (seed: number, n = 1) => Float32Array.from({ length: n * H }, (_, i) => Math.sin(i * 0.37 + seed) * 0.5);
      for (let k = 0; k < 3; k++) {
        for (const kind of ['b', 's']) span.openSession(`${kind}${k}`, 32);
        for (const kind of ['b', 's']) await span.step({ sessionId: `${kind}${k}`, hidden: row(k, 2 + k) });
      }
      for (let t = 0; t < 4; t++) {
        const rows = [0, 1, 2].map((k) => row(10 * t + k));
        const batched = await span.stepBatch(rows.map((hidden, k) => ({ sessionId: `b${k}`, hidden })));
        for (let k = 0; k < 3; k++) expect(batched[k]).toEqual(await span.step({ sessionId: `s${k}`, hidden: rows[k]! }));
      }
    } finally {
      await span.dispose();
    }
  });
});

describe('replacement opens that fail part-way', () => {
  it('the 2nd of 3 parallel opens is refused: the 1st (whose open completes later) and the 3rd are closed', async () => {
    first.fault = { kind: 'open-slow', atStep: 300 };
    flaky.fault = { kind: 'open-refused', atStep: 0 };
    last.fault = undefined;
    const error = await open(only(first, flaky, last), { maxRetries: 0, failoverDeadlineMs: 1_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SwarmUnavailableError);
    expect(first.faultsFired).toContain('open-slow');
    await sleep(400); // the slow open completes after the refusal
    await eventually(async () => first.openSessions === 0 && last.openSessions === 0, 3_000, 50).catch(() => undefined);
    expect([first.openSessions, flaky.openSessions, last.openSessions]).toEqual([0, 0, 0]);
  });
});
