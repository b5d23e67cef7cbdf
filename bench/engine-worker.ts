/**
 * One benchmark measurement in its own process (so peak RSS belongs to one engine):
 *   tsx bench/engine-worker.ts <corolla|llama.cpp|llama.cpp-controlled> <model.gguf> <threads> <promptTokens> <decodeTokens> [kvCacheType]
 * Prints one JSON line: prefill and decode tokens/s and peak RSS. Prefill is measured for the first prompt of the
 * process (`prefill_tok_s`, what a one-shot command waits for) and, after decode, for the last of two more prompts of
 * the same length, each different and in a fresh sequence (`warm_prefill_tok_s`, what a running server's later
 * requests wait for). They differ because early runs also pay for the memory an engine touches for the first time
 * (onnxruntime's arena, and its memory pattern, which it plans on one run and allocates on the next).
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

// Fixed pseudo-random prompts over ordinary tokens, the same for both engines; the later ones share no prefix.
const promptOf = (step: number, offset: number) => Array.from({ length: promptTokens }, (_, i) => offset + ((i * step) % 20000));
const prompt = promptOf(7919, 300);
const laterPrompts = [promptOf(104729, 301), promptOf(1299709, 302)];

/** Runs each later prompt through `prefill` in turn and returns the last one's time. */
async function warmPrefillMs(prefill: (prompt: number[]) => Promise<unknown>): Promise<number> {
  let ms = 0;
  for (const later of laterPrompts) {
    const t = performance.now();
    await prefill(later);
    ms = performance.now() - t;
  }
  return ms;
}

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
  await session.close();
  const warmMs = await warmPrefillMs(async (later) => {
    const fresh = await model.openSession(promptTokens + 1);
    await fresh.next(later);
    await fresh.close();
  });
  return { loadMs, prefillMs, decodeMs, warmPrefillMs: warmMs };
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
  const warmMs = await warmPrefillMs(async (later) => {
    await sequence.clearHistory();
    for await (const _token of sequence.evaluate(later as never, { temperature: 0 })) break;
  });
  return { loadMs, prefillMs, decodeMs, warmPrefillMs: warmMs };
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
  const warmMs = await warmPrefillMs(async (later) => {
    await sequence.clearHistory();
    await sequence.controlledEvaluate(later.map((id, i) => (i === later.length - 1 ? [id, { generateNext: { token: true } }] : id)) as never);
  });
  return { loadMs, prefillMs, decodeMs, warmPrefillMs: warmMs };
}

const r = engine === 'llama.cpp' ? await llamaCpp() : engine === 'llama.cpp-controlled' ? await llamaCppControlled() : await corolla();
process.stdout.write(
  JSON.stringify({
    engine,
    threads,
    load_ms: Math.round(r.loadMs),
    prefill_tok_s: Math.round((promptTokens / r.prefillMs) * 1000 * 10) / 10,
    decode_tok_s: Math.round((decodeTokens / r.decodeMs) * 1000 * 10) / 10,
    warm_prefill_tok_s: Math.round((promptTokens / r.warmPrefillMs) * 1000 * 10) / 10,
    peak_rss_mb: peakRssMb(),
  }) + '\n',
);
process.exit(0);
