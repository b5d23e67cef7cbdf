/** Block servers on a real memory swarm: announced records, load updates, span choice, rebalancing, offline. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedModelSource } from '../../src/model/load.js';
import { createBlockServer, type BlockServer } from '../../src/server/block-server.js';
import type { AnnouncedEvent, RebalancedEvent } from '../../src/server/events.js';
import { rebalancing } from '../../src/server/services/rebalancing.js';
import { createRegistry, type AnnounceInput, type Registry } from '../../src/swarm/registry/index.js';
import type { SwarmNode } from '../../src/swarm/node.js';
import { SOFTWARE_VERSION } from '../../src/version.js';
import { openStories } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream, STORIES_MODEL_ID } from '../support/servers.js';
import { FAST, startSwarm } from '../support/swarm.js';
import { eventually } from '../support/wait.js';

let source: LoadedModelSource;
let boot: SwarmNode;
let nodes: SwarmNode[];
let observer: Registry;
const servers: BlockServer<any>[] = [];

beforeAll(async () => {
  source = await openStories();
  ({ boot, nodes } = await startSwarm(4));
  observer = await createRegistry(boot, FAST);
});
afterAll(async () => {
  for (const server of servers) await server.stop().catch(() => {});
  await observer?.close();
  await Promise.all([boot, ...(nodes ?? [])].map((node) => node.stop()));
  source?.close();
});

/** Wraps a registry to record the states and spans it was asked to announce. */
async function recordingRegistry(node: SwarmNode, calls: Partial<AnnounceInput>[]): Promise<Registry> {
  const registry = await createRegistry(node, FAST);
  return new Proxy(registry, {
    get(target, key, receiver) {
      if (key === 'announce' || key === 'update') {
        return (input: Partial<AnnounceInput>) => {
          calls.push({ state: input.state, span: input.span, throughput: input.throughput });
          return (target[key] as (i: Partial<AnnounceInput>) => unknown)(input);
        };
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

describe('announcements', () => {
  it('announces JOINING, then ONLINE with the measured record fields, then load changes and OFFLINE', async () => {
    const calls: Partial<AnnounceInput>[] = [];
    const registry = await recordingRegistry(nodes[0]!, calls);
    const server = await createBlockServer(
      { node: nodes[0]!, source, registry },
      {
        modelId: STORIES_MODEL_ID,
        range: { start: 0, end: 5 },
        maxCacheTokens: 2048,
        publicName: 'test-server',
        location: 'loopback',
        ethAddress: '0x' + 'ab'.repeat(20),
        start: false,
      },
    );
    servers.push(server);
    const announced: AnnouncedEvent[] = [];
    server.addEventListener('announced', (event) => announced.push(event.detail));
    await server.start();
    expect(calls.map((c) => c.state)).toEqual(['joining', 'online']);
    expect(announced).toEqual([
      { state: 'joining', blocks: { start: 0, end: 5 } },
      { state: 'online', blocks: { start: 0, end: 5 } },
    ]);
    expect(calls[0]!.span).toEqual({ start: 0, end: 5 });

    const record = await eventually(async () => (await observer.lookup(STORIES_MODEL_ID)).find((r) => r.record.peerId === nodes[0]!.peerId)?.record);
    // issue 7: the engine fingerprint, from the server's engine settings (CPU, default int8 activations)
    expect(record?.engine).toBe('ort-cpu/f32/act-int8');
    expect(record).toMatchObject({
      modelId: STORIES_MODEL_ID,
      peerId: nodes[0]!.peerId,
      numBlocks: 5,
      span: { start: 0, end: 5 },
      state: 'online',
      cacheTokensLeft: 2048,
      dtype: 'f32',
      quantization: 'none',
      softwareVersion: SOFTWARE_VERSION,
      publicName: 'test-server',
      location: 'loopback',
      ethAddress: '0x' + 'ab'.repeat(20),
      accelerator: { kind: 'cpu' },
      load: { activeSessions: 0, queuedSteps: 0 },
    });
    expect(record.addrs).toEqual(nodes[0]!.multiaddrs);
    // compute is measured (decode steps/s through the span); network estimated; effective is the min
    expect(record.throughput.compute).toBeGreaterThan(20);
    expect(record.throughput.network).toBeGreaterThan(record.throughput.compute);
    expect(record.throughput.effective).toBe(record.throughput.compute);

    // Opening a session shows up in the live load (heartbeat) and the cache left.
    const c = await openBlockStream(nodes[3]!, server.peerId);
    await c.request({ type: 'open', sessionId: 'x', maxLength: 48, spanStart: 0, spanEnd: 5, codec: 'f32' });
    const report = await eventually(async () => {
      const r = await observer.heartbeat(server.peerId);
      return r.record.load.activeSessions === 1 ? r.record : undefined;
    });
    expect(report.cacheTokensLeft).toBe(2048 - 48);
    await c.close();
    await eventually(async () => ((await observer.heartbeat(server.peerId)).record.load.activeSessions === 0 ? true : undefined));

    await server.stop();
    expect(announced.at(-1)).toEqual({ state: 'offline', blocks: { start: 0, end: 5 } });
    await registry.close(); // ours, not the server's: stop() withdrew it but leaves it to us
    expect(calls.length).toBe(2); // withdraw is not an announce/update
    const offline = await eventually(async () => (await observer.lookup(STORIES_MODEL_ID)).find((r) => r.record.peerId === nodes[0]!.peerId && r.record.state === 'offline'));
    expect(offline.record.span).toEqual({ start: 0, end: 5 });
    // the block protocol is gone with it
    await expect(openBlockStream(nodes[3]!, server.peerId)).rejects.toThrow();
  });

  it('chooses the weakest span when none is given, and moves when the swarm changes', async () => {
    const base = { modelId: 'stories-span@test', maxCacheTokens: 512, maxBatch: 1, registryOptions: FAST, services: { rebalancing: rebalancing({ intervalMs: 0 }) } } as const;
    const x = await createBlockServer({ node: nodes[0]!, source }, { ...base, numBlocks: 3, computeThroughput: 100 });
    servers.push(x);
    expect(x.range).toEqual({ start: 0, end: 3 });
    await eventually(async () => ((await observer.lookup('stories-span@test')).length === 1 ? true : undefined));
    const y = await createBlockServer({ node: nodes[1]!, source }, { ...base, numBlocks: 3, computeThroughput: 100 });
    servers.push(y);
    expect(y.range).toEqual({ start: 2, end: 5 });
    expect(await y.services.rebalancing.rebalance()).toMatchObject({ move: false });

    // A strong server arrives on [2, 5): blocks 0..1 are now the bottleneck, and y moving there doubles the minimum.
    const z = await createBlockServer({ node: nodes[2]!, source }, { ...base, range: { start: 2, end: 5 }, computeThroughput: 1000 });
    servers.push(z);
    await eventually(async () => ((await y.registry.lookup('stories-span@test')).filter((r) => r.record.state === 'online').length === 3 ? true : undefined));
    const moves: RebalancedEvent[] = [];
    y.addEventListener('rebalanced', (event) => moves.push(event.detail));
    const decision = await y.services.rebalancing.rebalance();
    expect(decision).toMatchObject({ move: true, to: { start: 0, end: 3 }, minBefore: 100, minAfter: 200 });
    expect(moves).toEqual([{ from: { start: 2, end: 5 }, to: { start: 0, end: 3 } }]);
    expect(y.range).toEqual({ start: 0, end: 3 });
    expect(y.record()).toMatchObject({ state: 'online', span: { start: 0, end: 3 } });
    // it serves the new span
    const c = await openBlockStream(nodes[3]!, y.peerId);
    expect((await c.request({ type: 'open', sessionId: 'n', maxLength: 4, spanStart: 0, spanEnd: 3, codec: 'f32' })).header.type).toBe('opened');
    expect((await c.request({ type: 'step', sessionId: 'n', stepId: 0, position: 0, tokens: 1 }, { data: randomHidden(1, 64, 1), shape: [1, 64], dtype: 'f32' })).header.type).toBe('stepResult');
    await c.close();
    // and now it stays
    expect(await y.services.rebalancing.rebalance()).toMatchObject({ move: false });
    // z was placed by the operator: never moves
    expect(await z.services.rebalancing.rebalance()).toMatchObject({ move: false, reason: 'the span was fixed by the operator' });
  });
});
