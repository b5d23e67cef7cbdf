/**
 * Swarm benchmark on loopback, in one run, with a SmolLM2-135M-shaped model (random weights, q4_0 by default):
 * - decode tok/s through the local engine, one server holding every block, and three servers with one span each,
 *   forwarded (each server pushes its output to the next) and hop by hop (one client round trip per hop); each
 *   configuration runs `--rounds` times (default 3), the configurations alternating, and the medians are reported;
 * - the same whole-model server generating on its own (/corolla/generate: it samples, tokens stream back, no round
 *   trip per token);
 * - per hop: the time in the server (its reported queue + engine time and request-to-reply time), on the wire (the
 *   rest of that hop's wait), and per step the time in the client (embeddings, LM head, sampling);
 * - aggregate decode tok/s of 8 concurrent sessions against 1 (servers batch across clients);
 * - time to recover from a SIGKILLed server mid-generation (skipped with --quick);
 * - bytes per token per hop on the wire.
 * `--latency-ms N` puts a delaying TCP proxy in front of every server (N/2 ms each way, so N ms per round trip), which
 * the servers announce, so client-to-server and server-to-server traffic both pay it (and one in front of each
 * server's direct-lane port, which its tickets name). `--no-lanes` keeps every step on libp2p streams.
 * Servers are real `corolla serve` processes; the client is the library (RemoteModel) in this process.
 * Writes bench/results/swarm.json; the last stdout line is a JSON summary.
 *
 *   npm run bench:swarm [-- --dtype q4_0 --tokens 64 --rounds 3 --latency-ms 20 --quick]
 */
import '../src/util/polyfills.js';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RemoteModel, type RemoteInferenceSession } from '../src/client/remote-model.js';
import { remoteGenerate } from '../src/client/generate-client.js';
import { createSwarmNode } from '../src/swarm/node.js';
import { freePort } from '../src/util/processes.js';
import type { HopTiming } from '../src/client/inference-session.js';
import { loadLocalModel } from '../src/inference/local-model.js';
import { openModel } from '../src/model/load.js';
import { startCorolla, type CorollaProcess } from '../src/cli/processes.js';
import { encodedByteLength } from '../src/wire/tensor-codec.js';
import { encodeMessage } from '../src/wire/messages.js';
import { median } from './support/stats.js';

const { values } = parseArgs({
  options: {
    dtype: { type: 'string', default: 'q4_0' },
    tokens: { type: 'string', default: '64' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    'latency-ms': { type: 'string', default: '0' },
    quick: { type: 'boolean', default: false },
    'no-lanes': { type: 'boolean', default: false },
  },
});
const root = path.resolve(import.meta.dirname, '..');
/** SmolLM2's tokenizer, for random-weight models of its shape (from ../shared/models beside the checkout). */
const SMOLLM_TOKENIZER = path.join(root, '../shared/models/smollm2-135m-instruct-tokenizer/tokenizer.json');
const tokens = Number(values.tokens);
const rounds = Math.max(1, Number(values.rounds));
const latencyMs = Number(values['latency-ms']);
const modelsDir = path.join(os.tmpdir(), 'corolla-bench-models');
fs.mkdirSync(modelsDir, { recursive: true });
const model = path.join(modelsDir, `smollm2-135m-${values.dtype}.gguf`);
if (!fs.existsSync(model)) execFileSync(process.execPath, [path.join(root, 'bin/corolla.js'), 'dev', 'make-model', '--shape', 'smollm2-135m', '--dtype', values.dtype!, '--out', model, '--tokenizer', SMOLLM_TOKENIZER], { stdio: 'inherit' });
const log = (line: string) => process.stderr.write(line + '\n');
const PROMPT = [1, 504, 3258, 282, 253, 1345, 28, 665];
const children: CorollaProcess[] = [];
const proxies: net.Server[] = [];

/** A TCP proxy to `target` that delays every chunk by `delayMs` in each direction (order kept). Returns its port. */
async function delayingProxy(target: number, delayMs: number): Promise<number> {
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target, '127.0.0.1');
    inbound.setNoDelay(true);
    outbound.setNoDelay(true);
    const relay = (from: net.Socket, to: net.Socket) => from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), delayMs));
    relay(inbound, outbound);
    relay(outbound, inbound);
    const end = () => setTimeout(() => (inbound.destroy(), outbound.destroy()), delayMs);
    inbound.on('close', end).on('error', end);
    outbound.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxies.push(server);
  return (server.address() as net.AddressInfo).port;
}

async function swarm(spans: string[], extra: string[] = []): Promise<{ bootstrap: string; servers: (CorollaProcess & { peerId: string })[] }> {
  const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\//, timeoutMs: 180_000 });
  children.push(dht);
  const bootstrap = dht.readyLine.trim();
  const servers = await Promise.all(
    spans.map(async (blocks) => {
      const addressing: string[] = values['no-lanes'] ? ['--no-lanes'] : [];
      if (latencyMs > 0) {
        const port = await freePort();
        const proxied = await delayingProxy(port, latencyMs / 2);
        addressing.push('--listen', `/ip4/127.0.0.1/tcp/${port}`, '--announce', `/ip4/127.0.0.1/tcp/${proxied}`);
        if (!values['no-lanes']) {
          const lanePort = await freePort();
          addressing.push('--lane-port', String(lanePort), '--lane-announce-port', String(await delayingProxy(lanePort, latencyMs / 2)));
        }
      }
      const p = await startCorolla(`serve ${blocks}`, ['serve', '--model', model, '--blocks', blocks, '--bootstrap', bootstrap, '--threads', values.threads!, ...addressing, ...extra], { ready: /^ready /, timeoutMs: 180_000 });
      children.push(p);
      return Object.assign(p, { peerId: p.readyLine.split(' ')[1]! });
    }),
  );
  return { bootstrap, servers };
}

async function stopAll() {
  await Promise.all(children.splice(0).map((c) => c.stop()));
  for (const proxy of proxies.splice(0)) proxy.close();
}

/** Per-step timings of a remote session: the client's share and each hop's. */
interface StepSample {
  readonly stepMs: number;
  readonly hops: readonly HopTiming[];
}

/** Decode tok/s of one greedy session of `tokens` steps after the prompt (and, for remote sessions, per-step timings). */
async function decodeRate(next: (ids: number[]) => Promise<Float32Array>, remote?: RemoteInferenceSession, samples?: StepSample[]): Promise<number> {
  let logits = await next(PROMPT);
  for (let i = 0; i < 4; i++) logits = await next([argmax(logits)]); // warm-up
  const t = performance.now();
  for (let i = 0; i < tokens; i++) {
    const started = performance.now();
    logits = await next([argmax(logits)]);
    if (remote && samples) samples.push({ stepMs: performance.now() - started, hops: remote.swarm.stats.lastStep });
  }
  return (tokens / (performance.now() - t)) * 1000;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Where a remote step's time went, as medians over steps: per hop, the server's own time (engine and request to
 * reply) and, for a hop the client sent to, the wire (the rest of its round trip); per step, the client's time
 * (everything after the last hop's reply: LM head, sampling, next embedding) and the time outside every server's
 * compute (wire, network stacks and pushes of the whole chain).
 */
function breakdown(samples: readonly StepSample[]) {
  const hops = samples[0]?.hops.length ?? 0;
  const perHop = Array.from({ length: hops }, (_, k) => {
    const at = samples.filter((s) => s.hops.length === hops).map((s) => {
      const hop = s.hops[k]!;
      const since = hop.pushed ? hop.arrivedMs - s.hops[k - 1]!.arrivedMs : hop.waitedMs;
      return { since, server: hop.serverMs ?? 0, compute: hop.computeMs ?? 0, pushed: hop.pushed };
    });
    return {
      hop: k,
      pushed: at[0]?.pushed ?? false,
      hop_ms: r3(median(at.map((x) => x.since))),
      server_ms: r3(median(at.map((x) => x.server))),
      compute_ms: r3(median(at.map((x) => x.compute))),
      // a pushed hop's wire time is not separable from its upstream's (which replies only once the push is accepted)
      wire_ms: at[0]?.pushed ? null : r3(median(at.map((x) => x.since - x.server))),
    };
  });
  return {
    step_ms: r3(median(samples.map((s) => s.stepMs))),
    client_ms: r3(median(samples.map((s) => s.stepMs - (s.hops.at(-1)?.arrivedMs ?? 0)))),
    /** Everything between the first send and the last reply that no server spent computing: wire, stacks, pushes. */
    outside_compute_ms: r3(median(samples.map((s) => (s.hops.at(-1)?.arrivedMs ?? 0) - s.hops.reduce((sum, hop) => sum + (hop.computeMs ?? 0), 0)))),
    hops: perHop,
  };
}

const results: Record<string, unknown> = { model: path.basename(model), tokens, threads: Number(values.threads), rounds, latency_ms: latencyMs, lanes: !values['no-lanes'] };
try {
  const source = await openModel(model);
  const local = await loadLocalModel(source, { threads: Number(values.threads) });
  const whole = await swarm(['all']);
  const three = await swarm(['0:10', '10:20', '20:30']);
  const wholeModel = await RemoteModel.open({ model, bootstrap: [whole.bootstrap] });
  const threeModel = await RemoteModel.open({ model, bootstrap: [three.bootstrap] });
  const threePlain = await RemoteModel.open({ model, bootstrap: [three.bootstrap], forwarding: false });
  // The whole-model server's own generation (/corolla/generate): it samples and streams token ids, so no step waits
  // for a round trip; what a LlamaNet-style client of one whole-model server sees.
  const generateClient = await createSwarmNode({ transport: 'tcp', bootstrap: [whole.bootstrap] });
  const generateRate = async (): Promise<number> => {
    const stream = remoteGenerate(generateClient.libp2p, whole.servers[0]!.peerId, { prompt: PROMPT, maxTokens: 4 + tokens, sampling: { temperature: 0 }, stopTokens: [] });
    let seen = 0;
    let t = 0;
    for await (const _ of stream) if (++seen === 4) t = performance.now(); // after the prompt and 3 warm-up tokens
    if (seen !== 4 + tokens) throw new Error(`the whole-model server generated ${seen} tokens, not ${4 + tokens}`);
    return (tokens / (performance.now() - t)) * 1000;
  };
  const rates: Record<string, number[]> = { local: [], whole: [], whole_generate: [], three: [], three_hop_by_hop: [] };
  const transports: Record<string, string[]> = {};
  const samples: Record<string, StepSample[]> = { whole: [], three: [], three_hop_by_hop: [] };
  const remotes: Record<string, RemoteModel> = { whole: wholeModel, three: threeModel, three_hop_by_hop: threePlain };
  for (let round = 0; round < rounds; round++) {
    for (const kind of Object.keys(rates)) {
      if (kind === 'whole_generate') {
        rates.whole_generate!.push(await generateRate());
      } else if (kind === 'local') {
        const session = await local.openSession(PROMPT.length + tokens + 8);
        rates.local!.push(await decodeRate((ids) => session.next(ids)));
        await session.close();
      } else {
        const session = await remotes[kind]!.openSession(PROMPT.length + tokens + 8);
        transports[kind] = session.swarm.route.map((hop) => hop.transport);
        rates[kind]!.push(await decodeRate((ids) => session.next(ids), session, samples[kind]));
        await session.close();
      }
    }
    log(`round ${round + 1}: ${Object.entries(rates).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(1)}`).join(', ')} tok/s`);
  }
  results.local_tok_s = median(rates.local!);
  results.whole_model_tok_s = median(rates.whole!);
  results.whole_model_generate_tok_s = median(rates.whole_generate!);
  results.three_hop_tok_s = median(rates.three!);
  results.three_hop_by_hop_tok_s = median(rates.three_hop_by_hop!);
  results.runs_tok_s = rates;
  // what carried each hop's steps: a direct lane, or a libp2p stream (a lane that failed falls back quietly)
  results.transports = transports;
  results.breakdown = { whole: breakdown(samples.whole!), three: breakdown(samples.three!), three_hop_by_hop: breakdown(samples.three_hop_by_hop!) };
  log(`medians: local ${(results.local_tok_s as number).toFixed(1)}, whole ${(results.whole_model_tok_s as number).toFixed(1)}, whole generating ${(results.whole_model_generate_tok_s as number).toFixed(1)}, three forwarded ${(results.three_hop_tok_s as number).toFixed(1)}, three hop by hop ${(results.three_hop_by_hop_tok_s as number).toFixed(1)} tok/s`);
  log(`transports: ${JSON.stringify(transports)}`);
  log(`breakdown: ${JSON.stringify(results.breakdown)}`);
  await wholeModel.close();
  await generateClient.stop();
  await threePlain.close();
  // 8 concurrent sessions through the three hops
  {
    const sessions = await Promise.all(Array.from({ length: 8 }, () => threeModel.openSession(PROMPT.length + tokens + 8)));
    const t = performance.now();
    await Promise.all(sessions.map((s) => decodeRate((ids) => s.next(ids))));
    const wall = (performance.now() - t) / 1000;
    // Each session ran prompt + warm-up + `tokens` steps; count the timed decode steps against the whole wall time.
    results.batch8_aggregate_tok_s = (8 * tokens) / wall;
    await Promise.all(sessions.map((s) => s.close()));
    log(`8 concurrent sessions: ${(results.batch8_aggregate_tok_s as number).toFixed(1)} tok/s aggregate`);
  }
  await threeModel.close();
  await local.close();
  source.close();
  await stopAll();
  if (!values.quick) {
    // Recovery: two servers per span, SIGKILL the middle hop of the route mid-generation.
    {
      const { bootstrap, servers } = await swarm(['0:10', '10:20', '20:30', '0:10', '10:20', '20:30']);
      let route: string[] = [];
      const recoveries: number[] = [];
      const remote = new RemoteModel({ model, bootstrap: [bootstrap] });
      remote.addEventListener('route', ({ detail: hops }) => (route = hops.map((h) => h.peerId)));
      remote.addEventListener('recovery', ({ detail: recovery }) => recoveries.push(recovery.ms));
      await remote.start();
      const session = await remote.openSession(PROMPT.length + tokens + 8);
      let logits = await session.next(PROMPT);
      let killedAt = 0;
      let gapMs = 0;
      for (let i = 0; i < tokens; i++) {
        if (i === Math.floor(tokens / 2)) {
          const victim = servers.find((s) => s.peerId === route[1]);
          victim?.kill();
          killedAt = performance.now();
        }
        logits = await session.next([argmax(logits)]);
        if (killedAt && !gapMs) gapMs = performance.now() - killedAt;
      }
      results.recovery_ms = recoveries[0] ?? null;
      results.recovery_token_gap_ms = gapMs;
      await session.close();
      await remote.close();
      await stopAll();
      log(`recovery: ${results.recovery_ms} ms (the token after the kill came ${gapMs.toFixed(0)} ms later)`);
    }
  }
  // Bytes per token per hop: one decode step's request frame (the reply is the same size).
  const hidden = (await openModel(model).then((m) => (m.close(), m.config))).hiddenSize;
  for (const codec of ['f32', 'f16', 'int8'] as const) {
    const frame = encodeMessage({ type: 'step', sessionId: 'x'.repeat(22), stepId: 100, position: 100, tokens: 1 }, { data: new Float32Array(hidden), shape: [1, hidden], dtype: codec });
    results[`bytes_per_token_per_hop_${codec}`] = frame.byteLength;
    results[`tensor_bytes_${codec}`] = encodedByteLength(codec, [1, hidden]);
  }
} finally {
  await stopAll();
}

const msPerToken = (tokS: unknown) => 1000 / (tokS as number);
const summary = {
  three_hop_vs_local: (results.three_hop_tok_s as number) / (results.local_tok_s as number),
  whole_model_vs_local: (results.whole_model_tok_s as number) / (results.local_tok_s as number),
  /** The same server generating on its own (sampling server-side, tokens streamed): no round trip per token. */
  whole_model_generate_vs_local: (results.whole_model_generate_tok_s as number) / (results.local_tok_s as number),
  three_hop_by_hop_vs_local: (results.three_hop_by_hop_tok_s as number) / (results.local_tok_s as number),
  /** What one hop adds to a token over the local engine (ms): the whole-model server's one hop, and three forwarded hops / 3. */
  one_hop_overhead_ms: r3(msPerToken(results.whole_model_tok_s) - msPerToken(results.local_tok_s)),
  per_hop_overhead_ms: r3((msPerToken(results.three_hop_tok_s) - msPerToken(results.local_tok_s)) / 3),
  per_hop_overhead_hop_by_hop_ms: r3((msPerToken(results.three_hop_by_hop_tok_s) - msPerToken(results.local_tok_s)) / 3),
  latency_ms: latencyMs,
  lanes: !values['no-lanes'],
  batch8_vs_single: (results.batch8_aggregate_tok_s as number) / (results.three_hop_tok_s as number),
  recovery_ms: results.recovery_ms,
  bytes_per_token_per_hop: results.bytes_per_token_per_hop_f32,
};
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench/results/swarm.json'), JSON.stringify({ date: new Date().toISOString(), ...results, summary }, null, 2));
process.stdout.write(JSON.stringify(summary) + '\n');
process.exit(0);
