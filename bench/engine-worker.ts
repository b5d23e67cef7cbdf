/**
 * One benchmark measurement in its own process (so peak RSS belongs to one engine):
 *   tsx bench/engine-worker.ts <corolla|llama.cpp|llama.cpp-controlled> <model.gguf> <threads> <promptTokens> <decodeTokens> [kvCacheType]
 * Prints one JSON line: prefill and decode tokens/s and peak RSS.
 *
 * llama.cpp is driven two ways through node-llama-cpp: `llama.cpp` is the `sequence.evaluate()` generator (prefill =
 * time to the first generated token, decode = the tokens after it; greedy), `llama.cpp-controlled` one
 * `controlledEvaluate()` call per token. bench/engine.ts measures both and compares against the faster.
 */
import fs from 'node:fs';
import '../src/util/polyfills.js';

const [engine, modelPath, threadsArg, promptArg, decodeArg, kvArg] = process.argv.slice(2);
/** Our KV cache's element type; llama.cpp's is f16 by default. */
const kvCacheType = kvArg === 'f32' ? 'f32' : 'f16';
const threads = Number(threadsArg);
const promptTokens = Number(promptArg);
const decodeTokens = Number(decodeArg);

function peakRssMb(): number {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

// A fixed pseudo-random prompt over ordinary tokens, the same for both engines.
const prompt = Array.from({ length: promptTokens }, (_, i) => 300 + ((i * 7919) % 20000));

async function corolla() {
  const { openModel } = await import('../src/model/load.js');
  const { loadLocalModel } = await import('../src/inference/local-model.js');
  const t0 = performance.now();
  const source = await openModel(modelPath!);
  const model = await loadLocalModel(source, { threads, kvCacheType });
  const loadMs = performance.now() - t0;
  const session = await model.openSession(promptTokens + decodeTokens + 1);
  let t = performance.now();
  let logits = await session.next(prompt);
  const prefillMs = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < decodeTokens; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
    logits = await session.next([best]);
  }
  const decodeMs = performance.now() - t;
  return { loadMs, prefillMs, decodeMs };
}

async function openLlama() {
  const { getLlama } = await import('node-llama-cpp');
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' } as never);
  const model = await llama.loadModel({ modelPath: modelPath! });
  const context = await model.createContext({ threads, contextSize: promptTokens + decodeTokens + 64, batchSize: promptTokens });
  return { sequence: context.getSequence(), loadMs: performance.now() - t0 };
}

/** The evaluate() generator: node-llama-cpp's own generation loop, greedy. */
async function llamaCpp() {
  const { sequence, loadMs } = await openLlama();
  const t = performance.now();
  let prefillMs = 0;
  let generated = 0;
  for await (const _token of sequence.evaluate(prompt as never, { temperature: 0 })) {
    if (generated === 0) prefillMs = performance.now() - t;
    if (++generated > decodeTokens) break;
  }
  const decodeMs = performance.now() - t - prefillMs;
  return { loadMs, prefillMs, decodeMs };
}

/** One controlledEvaluate() call per token (how this benchmark drove llama.cpp before). */
async function llamaCppControlled() {
  const { sequence, loadMs } = await openLlama();
  let t = performance.now();
  let results = await sequence.controlledEvaluate(prompt.map((id, i) => (i === prompt.length - 1 ? [id, { generateNext: { token: true } }] : id)) as never);
  const prefillMs = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < decodeTokens; i++) {
    const next = (results[results.length - 1] as { next?: { token?: number } }).next?.token ?? 0;
    results = await sequence.controlledEvaluate([[next, { generateNext: { token: true } }]] as never);
  }
  const decodeMs = performance.now() - t;
  return { loadMs, prefillMs, decodeMs };
}

const r = engine === 'llama.cpp' ? await llamaCpp() : engine === 'llama.cpp-controlled' ? await llamaCppControlled() : await corolla();
process.stdout.write(
  JSON.stringify({
    engine,
    threads,
    load_ms: Math.round(r.loadMs),
    prefill_tok_s: Math.round((promptTokens / r.prefillMs) * 1000 * 10) / 10,
    decode_tok_s: Math.round((decodeTokens / r.decodeMs) * 1000 * 10) / 10,
    peak_rss_mb: peakRssMb(),
  }) + '\n',
);
process.exit(0);
