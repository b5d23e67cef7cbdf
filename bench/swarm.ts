/**
 * Swarm benchmark on loopback, in one run, with a SmolLM2-135M-shaped model (random weights, q4_0 by default):
 * - decode tok/s through the local engine, one server holding every block, and three servers with one span each;
 * - aggregate decode tok/s of 8 concurrent sessions against 1 (servers batch across clients);
 * - time to recover from a SIGKILLed server mid-generation;
 * - bytes per token per hop on the wire.
 * Servers are real `corolla serve` processes; the client is the library (RemoteModel) in this process.
 * Writes bench/results/swarm.json; the last stdout line is a JSON summary.
 *
 *   npm run bench:swarm [-- --dtype q4_0 --tokens 64]
 */
import '../src/util/polyfills.js';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RemoteModel } from '../src/client/remote-model.js';
import { loadLocalModel } from '../src/inference/local-model.js';
import { openModel } from '../src/model/load.js';
import { startCorolla, type CorollaProcess } from '../src/cli/processes.js';
import { encodedByteLength } from '../src/wire/tensor-codec.js';
import { encodeMessage } from '../src/wire/messages.js';

const { values } = parseArgs({ options: { dtype: { type: 'string', default: 'q4_0' }, tokens: { type: 'string', default: '64' }, threads: { type: 'string', default: '1' } } });
const root = path.resolve(import.meta.dirname, '..');
/** SmolLM2's tokenizer, for random-weight models of its shape (from ../shared/models beside the checkout). */
const SMOLLM_TOKENIZER = path.join(root, '../shared/models/smollm2-135m-instruct-tokenizer/tokenizer.json');
const tokens = Number(values.tokens);
const modelsDir = path.join(os.tmpdir(), 'corolla-bench-models');
fs.mkdirSync(modelsDir, { recursive: true });
const model = path.join(modelsDir, `smollm2-135m-${values.dtype}.gguf`);
if (!fs.existsSync(model)) execFileSync(process.execPath, [path.join(root, 'bin/corolla.js'), 'dev', 'make-model', '--shape', 'smollm2-135m', '--dtype', values.dtype!, '--out', model, '--tokenizer', SMOLLM_TOKENIZER], { stdio: 'inherit' });
const log = (line: string) => process.stderr.write(line + '\n');
const PROMPT = [1, 504, 3258, 282, 253, 1345, 28, 665];
const children: CorollaProcess[] = [];

async function swarm(spans: string[], extra: string[] = []): Promise<{ bootstrap: string; servers: (CorollaProcess & { peerId: string })[] }> {
  const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
  children.push(dht);
  const bootstrap = dht.readyLine.trim();
  const servers = await Promise.all(
    spans.map(async (blocks) => {
      const p = await startCorolla(`serve ${blocks}`, ['serve', '--model', model, '--blocks', blocks, '--bootstrap', bootstrap, '--threads', values.threads!, ...extra], { ready: /^ready /, timeoutMs: 180_000 });
      children.push(p);
      return Object.assign(p, { peerId: p.readyLine.split(' ')[1]! });
    }),
  );
  return { bootstrap, servers };
}

async function stopAll() {
  await Promise.all(children.splice(0).map((c) => c.stop()));
}

/** Decode tok/s of one greedy session of `tokens` steps after the prompt. */
async function decodeRate(next: (ids: number[]) => Promise<Float32Array>): Promise<number> {
  let logits = await next(PROMPT);
  for (let i = 0; i < 4; i++) logits = await next([argmax(logits)]); // warm-up
  const t = performance.now();
  for (let i = 0; i < tokens; i++) logits = await next([argmax(logits)]);
  return (tokens / (performance.now() - t)) * 1000;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

const results: Record<string, unknown> = { model: path.basename(model), tokens, threads: Number(values.threads) };
try {
  // Local engine.
  {
    const source = await openModel(model);
    const local = await loadLocalModel(source, { threads: Number(values.threads) });
    const session = await local.openSession(PROMPT.length + tokens + 8);
    results.local_tok_s = await decodeRate((ids) => session.next(ids));
    await local.close();
    source.close();
    log(`local: ${(results.local_tok_s as number).toFixed(1)} tok/s`);
  }
  // One server with every block.
  {
    const { bootstrap } = await swarm(['all']);
    const remote = await RemoteModel.open({ model, bootstrap: [bootstrap] });
    const session = await remote.openSession(PROMPT.length + tokens + 8);
    results.whole_model_tok_s = await decodeRate((ids) => session.next(ids));
    await session.close();
    await remote.close();
    await stopAll();
    log(`one whole-model server: ${(results.whole_model_tok_s as number).toFixed(1)} tok/s`);
  }
  // Three servers, one span each; then 8 concurrent sessions.
  {
    const { bootstrap } = await swarm(['0:10', '10:20', '20:30']);
    const remote = await RemoteModel.open({ model, bootstrap: [bootstrap] });
    const single = await remote.openSession(PROMPT.length + tokens + 8);
    results.three_hop_tok_s = await decodeRate((ids) => single.next(ids));
    await single.close();
    log(`three hops: ${(results.three_hop_tok_s as number).toFixed(1)} tok/s`);
    const sessions = await Promise.all(Array.from({ length: 8 }, () => remote.openSession(PROMPT.length + tokens + 8)));
    const t = performance.now();
    await Promise.all(sessions.map((s) => decodeRate((ids) => s.next(ids))));
    const wall = (performance.now() - t) / 1000;
    // Each session ran prompt + warm-up + `tokens` steps; count the timed decode steps against the whole wall time.
    results.batch8_aggregate_tok_s = (8 * tokens) / wall;
    await Promise.all(sessions.map((s) => s.close()));
    await remote.close();
    await stopAll();
    log(`8 concurrent sessions: ${(results.batch8_aggregate_tok_s as number).toFixed(1)} tok/s aggregate`);
  }
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
  // Bytes per token per hop: one decode step's request frame (the reply is the same size).
  const source = await openModel(model);
  const hidden = source.config.hiddenSize;
  source.close();
  for (const codec of ['f32', 'f16', 'int8'] as const) {
    const frame = encodeMessage({ type: 'step', sessionId: 'x'.repeat(22), stepId: 100, position: 100, tokens: 1 }, { data: new Float32Array(hidden), shape: [1, hidden], dtype: codec });
    results[`bytes_per_token_per_hop_${codec}`] = frame.byteLength;
    results[`tensor_bytes_${codec}`] = encodedByteLength(codec, [1, hidden]);
  }
} finally {
  await stopAll();
}

const summary = {
  three_hop_vs_local: (results.three_hop_tok_s as number) / (results.local_tok_s as number),
  whole_model_vs_local: (results.whole_model_tok_s as number) / (results.local_tok_s as number),
  batch8_vs_single: (results.batch8_aggregate_tok_s as number) / (results.three_hop_tok_s as number),
  recovery_ms: results.recovery_ms,
  bytes_per_token_per_hop: results.bytes_per_token_per_hop_f32,
};
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench/results/swarm.json'), JSON.stringify({ date: new Date().toISOString(), ...results, summary }, null, 2));
process.stdout.write(JSON.stringify(summary) + '\n');
process.exit(0);
