/**
 * Batched vs unbatched aggregate decode throughput through a chain of --hops block servers (default 3, each its own
 * process, `corolla serve`, TCP loopback), with the clients in this process. Not part of the test suite:
 *
 *     npm run bench:batching -- [--model PATH] [--hops 3] [--steps N] [--sessions 1,8,32] [--rounds R] [--no-lanes]
 *
 * Two chains run side by side (--max-batch 8 and --max-batch 1). For each session count, every session opens a
 * stream on every hop, prefills 4 tokens, then runs N single-token decode steps as fast as replies come back: each
 * step goes hop by hop, each hop's output feeding the next (sessions run concurrently). Prints one JSON line per
 * measurement, the medians over R rounds, and a last JSON line with batch8_vs_single and batch32_vs_single (the
 * aggregate throughput of 8 and 32 sessions ÷ one session's, on the batching chain).
 *
 *     npm run bench:batching -- --engine [--model PATH] [--layers L] [--context T] [--steps N]
 *
 * measures the engine alone, in this process: one batched decode call of 2, 4 and 8 sessions (each with T cached
 * tokens, default 64) against one session's decode step and one 8-token step of one session (the same matmul rows
 * with one cache), over the first L blocks (default all), N calls each, alternating; prints the medians (ms) and the
 * cost of each batch as a multiple of one step.
 */
import '../src/util/polyfills.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_PATH } from '../src/model/default-model.js';
import { loadSpan } from '../src/engine/span-executor.js';
import { openModel } from '../src/model/load.js';
import { createSwarmNode, type SwarmNode } from '../src/swarm/node.js';
import { dialChannel } from '../src/swarm/dial-channel.js';
import type { DecodedMessage, MessageInput, TensorInput } from '../src/wire/messages.js';
import { BLOCK_PROTOCOL } from '../src/wire/protocols.js';
import { median } from './support/stats.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' }, hops: { type: 'string' }, steps: { type: 'string' }, sessions: { type: 'string' }, threads: { type: 'string' }, rounds: { type: 'string' }, window: { type: 'string' },
    engine: { type: 'boolean' }, layers: { type: 'string' }, context: { type: 'string' }, 'no-lanes': { type: 'boolean' },
  },
});
const model = values.model ?? DEFAULT_MODEL_PATH;
const steps = Number(values.steps ?? 200);
const sessionCounts = (values.sessions ?? '1,8,32').split(',').map(Number);
const hops = Number(values.hops ?? 3);
const ROOT = resolve(import.meta.dirname, '..');

/** One block-protocol channel (a direct lane unless --no-lanes, as clients open): each request waits for its reply. */
async function openBlockStream(node: SwarmNode, peerId: string) {
  const lanes = values['no-lanes'] ? undefined : node.lanes;
  const { channel } = await dialChannel(node.libp2p, peerId, BLOCK_PROTOCOL, { signal: AbortSignal.timeout(30_000), lanes });
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

interface Server {
  readonly peerId: string;
  readonly addr: string;
  readonly start: number;
  readonly end: number;
  stop(): Promise<void>;
}

async function startServer(maxBatch: number, start: number, end: number, extra: string[] = []): Promise<Server> {
  const child = spawn(process.execPath, ['bin/corolla.js', 'serve', '--model', model, '--blocks', `${start}:${end}`, '--max-batch', String(maxBatch), '--threads', values.threads ?? '1', '--rebalance-interval', '0', ...extra], {
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
    start,
    end,
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** Aggregate decode tok/s of `sessions` concurrent sessions through the chain. */
async function measure(chain: readonly Server[], sessions: number, hidden: number): Promise<number> {
  const node = await createSwarmNode({ transport: 'tcp' });
  try {
    for (const server of chain) await node.connect(server.addr);
    const clients = await Promise.all(
      Array.from({ length: sessions }, async (_, i) => {
        const streams = await Promise.all(chain.map((server) => openBlockStream(node, server.peerId)));
        await Promise.all(streams.map((c, h) => c.request({ type: 'open', sessionId: `b${i}`, maxLength: steps + 8, spanStart: chain[h]!.start, spanEnd: chain[h]!.end, codec: 'f32' })));
        await step(streams, i, 0, 0, randomHidden(4, hidden, i + 1), 4, hidden);
        return streams;
      }),
    );
    const row = randomHidden(1, hidden, 99);
    const started = performance.now();
    await Promise.all(clients.map(async (streams, i) => { for (let s = 0; s < steps; s++) await step(streams, i, s + 1, 4 + s, row, 1, hidden); }));
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(clients.flat().map((c) => c.close()));
    return (sessions * steps) / seconds;
  } finally {
    await node.stop();
  }
}

/** One step of session `i` through every hop in turn. */
async function step(streams: readonly Awaited<ReturnType<typeof openBlockStream>>[], i: number, stepId: number, position: number, input: Float32Array, tokens: number, hidden: number): Promise<void> {
  let data = input;
  for (const c of streams) {
    const reply = await c.request({ type: 'step', sessionId: `b${i}`, stepId, position, tokens }, { data, shape: [tokens, hidden], dtype: 'f32' });
    if (reply.header.type !== 'stepResult') throw new Error(JSON.stringify(reply.header));
    data = reply.tensor!;
  }
}


/** In-process cost of batched decode calls against single steps (see the usage above). */
async function engineCost(): Promise<void> {
  const source = await openModel(model);
  const layers = Number(values.layers ?? source.config.numLayers);
  const context = Number(values.context ?? 64);
  const calls = Number(values.steps ?? 30);
  const H = source.config.hiddenSize;
  const span = await loadSpan(source, { start: 0, end: layers }, { threads: Number(values.threads ?? 1), maxBatch: 8 });
  for (let i = 0; i < 8; i++) {
    span.openSession(`e${i}`, context + 8);
    await span.step({ sessionId: `e${i}`, hidden: randomHidden(context, H, i + 1) });
  }
  const row = randomHidden(1, H, 99);
  const rows8 = randomHidden(8, H, 98);
  const ms: Record<string, number[]> = {};
  const time = async (name: string, run: () => Promise<unknown>) => {
    const started = performance.now();
    await run();
    (ms[name] ??= []).push(performance.now() - started);
  };
  for (let c = 0; c < calls; c++) {
    await time('step', () => span.step({ sessionId: 'e0', hidden: row, position: context }));
    await time('8_rows_one_session', () => span.step({ sessionId: 'e0', hidden: rows8, position: context }));
    for (const n of [2, 4, 8]) await time(`batch${n}`, () => span.stepBatch(Array.from({ length: n }, (_, i) => ({ sessionId: `e${i}`, hidden: row, position: context }))));
  }
  const medians = Object.fromEntries(Object.entries(ms).map(([name, xs]) => [name, Math.round(median(xs) * 1000) / 1000]));
  const vsStep = Object.fromEntries(['8_rows_one_session', 'batch2', 'batch4', 'batch8'].map((name) => [`${name}_vs_step`, Math.round((medians[name]! / medians.step!) * 100) / 100]));
  console.log(JSON.stringify({ benchmark: 'batching-engine', model, layers, context, calls, ms: medians, ...vsStep }));
  await span.dispose();
  source.close();
}

if (values.engine) {
  await engineCost();
  process.exit(0);
}

const source = await openModel(model);
const { hiddenSize, numLayers } = source.config;
source.close();
const rounds = Number(values.rounds ?? 3);
const spans = Array.from({ length: hops }, (_, h) => [Math.floor((h * numLayers) / hops), Math.floor(((h + 1) * numLayers) / hops)] as const);
const startChain = (maxBatch: number, extra: string[] = []) => Promise.all(spans.map(([start, end]) => startServer(maxBatch, start, end, extra)));
// Both chains run side by side and are measured alternately, round after round, so that load from anything else
// on the machine hits both alike; the median over rounds is reported.
const chains: Record<string, Server[]> = { 'max-batch 8': await startChain(8), 'max-batch 1': await startChain(1) };
if (values.window !== undefined) chains[`max-batch 8, window ${values.window} ms`] = await startChain(8, ['--batch-window', values.window]);
const samples: Record<string, Record<number, number[]>> = {};
try {
  for (const [name, chain] of Object.entries(chains)) {
    samples[name] = {};
    await measure(chain, 2, hiddenSize); // warm-up
  }
  for (let round = 0; round < rounds; round++) {
    for (const sessions of sessionCounts) {
      for (const [name, chain] of Object.entries(chains)) {
        const tokS = await measure(chain, sessions, hiddenSize);
        (samples[name]![sessions] ??= []).push(tokS);
        console.log(JSON.stringify({ model, hops, server: name, round, sessions, steps, aggregateTokS: Math.round(tokS), perSessionTokS: Math.round(tokS / sessions) }));
      }
    }
  }
} finally {
  for (const chain of Object.values(chains)) for (const server of chain) await server.stop();
}
console.log(`\naggregate decode tok/s, median of ${rounds} rounds (server process, TCP loopback, clients in one process):`);
console.log(['setting', ...sessionCounts.map((n) => `${n} sess`)].join('\t'));
for (const [name, row] of Object.entries(samples)) console.log([name, ...sessionCounts.map((n) => Math.round(median(row[n]!)))].join('\t'));
const batching = samples['max-batch 8']!;
const ratio = (n: number) => (batching[n] && batching[1] ? Math.round((median(batching[n]!) / median(batching[1]!)) * 100) / 100 : null);
const unbatched = samples['max-batch 1']!;
const unbatchedRatio = (n: number) => (unbatched[n] && unbatched[1] ? Math.round((median(unbatched[n]!) / median(unbatched[1]!)) * 100) / 100 : null);
console.log(JSON.stringify({ benchmark: 'batching', model, hops, steps, rounds, lanes: !values['no-lanes'], batch8_vs_single: ratio(8), batch32_vs_single: ratio(32), unbatched8_vs_single: unbatchedRatio(8), unbatched32_vs_single: unbatchedRatio(32) }));
process.exit(0);
