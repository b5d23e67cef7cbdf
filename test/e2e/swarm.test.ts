// runs alone: starts computing processes or measures time (vitest.config.ts)
// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
/**
 * Multi-process swarms on loopback: a `corolla dht` bootstrap peer, `corolla serve` block servers and
 * `corolla generate --swarm` clients, each a real process talking libp2p over TCP.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { COROLLA_BIN, startCorolla, type CorollaProcess } from '../../src/cli/processes.js';
import { STORIES_GGUF, testModel } from '../support/models.js';

const run = promisify(execFile);
const started: CorollaProcess[] = [];

async function dht(): Promise<string> {
  const p = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
  started.push(p);
  return p.readyLine.trim();
}

async function serve(model: string, blocks: string, bootstrap: string, extra: string[] = []): Promise<CorollaProcess & { peerId: string }> {
  const p = await startCorolla(`serve ${blocks}`, ['serve', '--model', model, '--blocks', blocks, '--bootstrap', bootstrap, ...extra], { ready: /^ready /, timeoutMs: 120_000 });
  started.push(p);
  const [, peerId, span] = p.readyLine.trim().split(' ');
  if (blocks !== 'all') expect(span).toBe(blocks);
  return Object.assign(p, { peerId: peerId! });
}

async function generateLocal(model: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [COROLLA_BIN, 'generate', '--model', model, '--temperature', '0', ...args], { maxBuffer: 1 << 24 });
  return stdout;
}

async function stopAll() {
  await Promise.all(started.splice(0).map((p) => p.stop()));
}

afterEach(stopAll, 60_000);
afterAll(stopAll, 60_000);

describe('multi-process swarm (stories260K, 5 blocks)', () => {
  const prompt = ['--prompt', 'Once upon a time', '--max-tokens', '120'];

  it('bootstrap + 3 servers with disjoint spans: greedy output is byte-identical to local generate', async () => {
    const bootstrap = await dht();
    await Promise.all(['0:2', '2:4', '4:5'].map((b) => serve(STORIES_GGUF, b, bootstrap)));
    const [local, swarm] = await Promise.all([
      generateLocal(STORIES_GGUF, prompt),
      generateLocal(STORIES_GGUF, [...prompt, '--swarm', '--bootstrap', bootstrap]),
    ]);
    expect(local.length).toBeGreaterThan(100);
    expect(swarm).toBe(local);
  }, 240_000);

  it('8 simultaneous client processes with different prompts all get their local greedy output', async () => {
    const bootstrap = await dht();
    await Promise.all(['0:2', '2:4', '4:5'].map((b) => serve(STORIES_GGUF, b, bootstrap)));
    const prompts = ['Once upon a time', 'The cat', 'Lily went', 'One day', 'Tom had a', 'The sun', 'A little bird', 'Mom said'];
    const args = (p: string) => ['--prompt', p, '--max-tokens', '48'];
    const local = await Promise.all(prompts.map((p) => generateLocal(STORIES_GGUF, args(p))));
    const swarm = await Promise.all(prompts.map((p) => generateLocal(STORIES_GGUF, [...args(p), '--swarm', '--bootstrap', bootstrap])));
    expect(new Set(local).size).toBeGreaterThan(4); // the prompts really lead to different texts
    expect(swarm).toEqual(local);
  }, 300_000);

  it('two servers per span, one SIGKILLed mid-generation: the output is still byte-identical', async () => {
    // A SmolLM2-shaped model (30 blocks) decodes slowly enough to kill a server while the client is mid-stream.
    const model = testModel('smollm2-135m', 'q4_0');
    const bootstrap = await dht();
    const spans = ['0:10', '10:20', '20:30'];
    const servers = await Promise.all([...spans, ...spans].map((b) => serve(model, b, bootstrap)));
    const args = ['--prompt', 'The quick brown fox', '--max-tokens', '160'];
    const local = await generateLocal(model, args);
    const client = spawn(process.execPath, [COROLLA_BIN, 'generate', '--model', model, '--temperature', '0', ...args, '--swarm', '--bootstrap', bootstrap], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    client.stdout.on('data', (d: Buffer) => (out += d.toString()));
    client.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => client.once('exit', resolve));
    const deadline = Date.now() + 120_000;
    while (out.length < 20 && client.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    // The client logs its route as "session route: [0,10)@<peer id> → [10,20)@<peer id> → …"; kill the middle hop.
    const middle = /session route: .*?→ \[10,20\)@(\S+)/.exec(err)?.[1];
    expect(middle, err).toBeDefined();
    const victim = servers.find((s) => s.peerId.endsWith(middle!))!;
    expect(client.exitCode).toBeNull(); // still generating: the kill lands mid-stream
    const before = out.length;
    victim.kill(); // SIGKILL
    const code = await exited;
    expect(code, err.slice(-2000)).toBe(0);
    expect(before).toBeLessThan(local.length);
    expect(out).toBe(local);
    expect(err).toContain(`hop failed, banned …${middle!.slice(-8)}`);
    expect(err).toMatch(/recovered blocks \[10, \d+\) on .* in [\d.]+ ms/);
  }, 300_000);
});
