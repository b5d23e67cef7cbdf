/**
 * Batched vs unbatched aggregate decode throughput through ONE block server running as its own process
 * (`corolla serve`, TCP loopback), with the clients in this process. Not part of the test suite:
 *
 *     npm run bench:batching -- [--model PATH] [--steps N] [--sessions 1,2,4,8] [--rounds R]
 *
 * Two servers run side by side (--max-batch 8 and --max-batch 1). For each session count, every session opens,
 * prefills 4 tokens, then runs N single-token decode steps as fast as replies come back (each session waits for its
 * own reply; sessions run concurrently). Prints one JSON line per measurement and the medians over R rounds.
 */
import '../src/util/polyfills.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { peerIdFromString } from '@libp2p/peer-id';
import { DEFAULT_MODEL_PATH } from '../src/model/default-model.js';
import { openModel } from '../src/model/load.js';
import { createSwarmNode, type SwarmNode } from '../src/swarm/node.js';
import { messageChannel } from '../src/wire/channel.js';
import type { DecodedMessage, MessageInput, TensorInput } from '../src/wire/messages.js';
import { BLOCK_PROTOCOL } from '../src/wire/protocols.js';

const { values } = parseArgs({
  options: { model: { type: 'string' }, steps: { type: 'string' }, sessions: { type: 'string' }, threads: { type: 'string' }, rounds: { type: 'string' }, window: { type: 'string' } },
});
const model = values.model ?? DEFAULT_MODEL_PATH;
const steps = Number(values.steps ?? 200);
const sessionCounts = (values.sessions ?? '1,8').split(',').map(Number);
const ROOT = resolve(import.meta.dirname, '..');

/** One block-protocol stream: each request waits for its reply. */
async function openBlockStream(node: SwarmNode, peerId: string) {
  const channel = messageChannel(await node.libp2p.dialProtocol(peerIdFromString(peerId), BLOCK_PROTOCOL));
  return {
    async request(header: MessageInput, tensor?: TensorInput): Promise<DecodedMessage> {
      await channel.send(header, tensor);
      return channel.receive();
    },
    close: () => channel.close(),
  };
}

/** Deterministic pseudo-random hidden states (values in ±1). */
function randomHidden(rows: number, hidden: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(rows * hidden);
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 0xffffffff) * 2 - 1;
  }
  return out;
}

async function startServer(maxBatch: number, extra: string[] = []): Promise<{ peerId: string; stop: () => Promise<void>; addr: string }> {
  const child = spawn(process.execPath, ['bin/corolla.js', 'serve', '--model', model, '--blocks', 'all', '--max-batch', String(maxBatch), '--threads', values.threads ?? '1', '--rebalance-interval', '0', ...extra], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, COROLLA_QUIET: '1' },
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const line = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).once('line', ok);
    child.once('exit', () => fail(new Error(stderr)));
  });
  const peerId = line.split(' ')[1]!;
  const addr = /\/ip4\/127\.0\.0\.1\/tcp\/\d+/.exec(stderr)![0] + `/p2p/${peerId}`;
  return {
    peerId,
    addr,
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function measure(addr: string, peerId: string, sessions: number, hidden: number, numBlocks: number): Promise<number> {
  const node = await createSwarmNode({ transport: 'tcp' });
  try {
    await node.connect(addr);
    const clients = await Promise.all(
      Array.from({ length: sessions }, async (_, i) => {
        const c = await openBlockStream(node, peerId);
        await c.request({ type: 'open', sessionId: `b${i}`, maxLength: steps + 8, spanStart: 0, spanEnd: numBlocks, codec: 'f32' });
        await c.request({ type: 'step', sessionId: `b${i}`, stepId: 0, position: 0, tokens: 4 }, { data: randomHidden(4, hidden, i + 1), shape: [4, hidden], dtype: 'f32' });
        return c;
      }),
    );
    const row = randomHidden(1, hidden, 99);
    const started = performance.now();
    await Promise.all(
      clients.map(async (c, i) => {
        for (let s = 0; s < steps; s++) {
          const reply = await c.request({ type: 'step', sessionId: `b${i}`, stepId: s + 1, position: 4 + s, tokens: 1 }, { data: row, shape: [1, hidden], dtype: 'f32' });
          if (reply.header.type !== 'stepResult') throw new Error(JSON.stringify(reply.header));
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(clients.map((c) => c.close()));
    return (sessions * steps) / seconds;
  } finally {
    await node.stop();
  }
}

const source = await openModel(model);
const { hiddenSize, numLayers } = source.config;
source.close();
const rounds = Number(values.rounds ?? 3);
// Both servers run side by side and are measured alternately, round after round, so that load from anything else
// on the machine hits both alike; the median over rounds is reported.
const servers: Record<string, Awaited<ReturnType<typeof startServer>>> = { 'max-batch 8': await startServer(8), 'max-batch 1': await startServer(1) };
if (values.window !== undefined) servers[`max-batch 8, window ${values.window} ms`] = await startServer(8, ['--batch-window', values.window]);
const samples: Record<string, Record<number, number[]>> = {};
try {
  for (const [name, server] of Object.entries(servers)) {
    samples[name] = {};
    await measure(server.addr, server.peerId, 2, hiddenSize, numLayers); // warm-up
  }
  for (let round = 0; round < rounds; round++) {
    for (const sessions of sessionCounts) {
      for (const [name, server] of Object.entries(servers)) {
        const tokS = await measure(server.addr, server.peerId, sessions, hiddenSize, numLayers);
        (samples[name]![sessions] ??= []).push(tokS);
        console.log(JSON.stringify({ model, server: name, round, sessions, steps, aggregateTokS: Math.round(tokS), perSessionTokS: Math.round(tokS / sessions) }));
      }
    }
  }
} finally {
  for (const server of Object.values(servers)) await server.stop();
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(`\naggregate decode tok/s, median of ${rounds} rounds (server process, TCP loopback, clients in one process):`);
console.log(['setting', ...sessionCounts.map((n) => `${n} sess`)].join('\t'));
for (const [name, row] of Object.entries(samples)) console.log([name, ...sessionCounts.map((n) => Math.round(median(row[n]!)))].join('\t'));
process.exit(0);
