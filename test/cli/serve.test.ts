/** `corolla serve` as a real process over TCP: ready line, a real session through it, OFFLINE and exit 0 on SIGTERM. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { modelIdOf } from '../../src/swarm/model-id.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { createRegistry, type Registry } from '../../src/swarm/registry/index.js';
import { killCorollaProcesses, spawnCorolla } from '../support/cli.js';
import { openStories, STORIES_GGUF } from '../support/models.js';
import { randomHidden } from '../support/random.js';
import { openBlockStream } from '../support/servers.js';
import { FAST } from '../support/swarm.js';
import { eventually } from '../support/wait.js';

let source: LoadedModelSource;
let boot: SwarmNode;
let observer: Registry;

beforeAll(async () => {
  source = await openStories();
  boot = await createSwarmNode({ transport: 'tcp' });
  observer = await createRegistry(boot, FAST);
});
afterAll(async () => {
  killCorollaProcesses();
  await observer?.close();
  await boot?.stop();
  source?.close();
});

const serve = (args: string[]) => spawnCorolla(['serve', ...args]);

describe('corolla serve', () => {
  it('prints "ready <peerId> 0:5", serves sessions, announces OFFLINE and exits 0 on SIGTERM', async () => {
    const modelId = await modelIdOf(source);
    const proc = serve(['--model', STORIES_GGUF, '--blocks', '0:5', '--bootstrap', boot.multiaddrs[0]!, '--public-name', 'cli-test', '--max-cache-tokens', '1000']);
    const line = await proc.firstLine;
    const match = /^ready (12D3KooW\w+) 0:5$/.exec(line);
    expect(match, line).not.toBeNull();
    const peerId = match![1]!;

    const online = await eventually(async () => (await observer.lookup(modelId)).find((r) => r.record.peerId === peerId && r.record.state === 'online'), 15_000);
    expect(online.record).toMatchObject({ span: { start: 0, end: 5 }, publicName: 'cli-test', cacheTokensLeft: 1000, numBlocks: 5 });

    // A real session through the process, checked against a local span.
    const c = await openBlockStream(boot, peerId);
    expect((await c.request({ type: 'open', sessionId: 'cli', maxLength: 8, spanStart: 0, spanEnd: 5, codec: 'f32' })).header.type).toBe('opened');
    const hidden = randomHidden(3, 64, 21);
    const reply = await c.request({ type: 'step', sessionId: 'cli', stepId: 0, position: 0, tokens: 3 }, { data: hidden, shape: [3, 64], dtype: 'f32' });
    const local = await loadSpan(source, { start: 0, end: 5 }, { threads: 1 });
    local.openSession('cli', 8);
    expect(reply.tensor).toEqual(await local.step({ sessionId: 'cli', hidden }));
    await local.dispose();
    await c.close();

    const exited = once(proc.child, 'exit');
    proc.child.kill('SIGTERM');
    const [code, signal] = (await exited) as [number | null, string | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(proc.stdout()).toBe(`${line}\n`); // exactly one stdout line
    expect(proc.stderr()).toMatch(/SIGTERM: stopping[\s\S]*announced OFFLINE[\s\S]*stopped/);
    const offline = await eventually(async () => (await observer.lookup(modelId)).find((r) => r.record.peerId === peerId && r.record.state === 'offline'), 15_000);
    expect(offline.record.span).toEqual({ start: 0, end: 5 });
  });

  it('a span outside the model is a clear error and exit code 1', async () => {
    const proc = serve(['--model', STORIES_GGUF, '--blocks', '2:9']);
    const [code] = (await once(proc.child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(proc.stderr()).toMatch(/corolla: blocks \[2, 9\) do not fit a model of 5 blocks/);
    expect(proc.stderr()).not.toMatch(/\n\s+at /);
    expect(proc.stdout()).toBe('');
  });
});
