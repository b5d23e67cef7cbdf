/**
 * Engine benchmark: Corolla's engine against llama.cpp (node-llama-cpp) on the same GGUF files, at equal thread
 * counts, for the SmolLM2-135M and Llama-3.2-1B shapes at f32, q8_0 and q4_0 (random weights from
 * `corolla dev make-model`). Prefill of a 512-token prompt (the process's first, and warm: the last of two more),
 * decode of 128 tokens, peak RSS, each run in its own process; plus decode after a 4,096-token prompt
 * (`--long-prompt`, on `--long-config`, default SmolLM2 q4_0).
 *
 * Honest baselines: every configuration runs `--rounds` times (default 3), the engines alternating within each
 * round, and medians are compared. llama.cpp is driven both through node-llama-cpp's `evaluate()` generator and
 * through one `controlledEvaluate()` per token (`--quick`: the generator only); each ratio is against the faster
 * of the two for that figure, and the report says which one that was. Both keep the KV cache in f16 (llama.cpp's
 * default; ours with `--kv-cache f16`, the default here; `--kv-cache f32` measures our exact f32 cache instead).
 * Writes bench/results/engine.json; the last stdout line is a JSON summary with the minimum ratios.
 *
 *   npm run bench:engine [-- --quick --shapes smollm2-135m --dtypes q4_0 --threads 1 --prompt 512 --decode 128 --rounds 3]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { median } from './support/stats.js';

const { values } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'smollm2-135m,llama-3.2-1b' },
    dtypes: { type: 'string', default: 'f32,q8_0,q4_0' },
    threads: { type: 'string', default: '1,2' },
    prompt: { type: 'string', default: '512' },
    decode: { type: 'string', default: '128' },
    timeout: { type: 'string', default: '900' },
    rounds: { type: 'string', default: '3' },
    'long-prompt': { type: 'string', default: '4096' },
    'long-decode': { type: 'string', default: '32' },
    /** shape/dtype/threads of the long-context measurement ('none' skips it) */
    'long-config': { type: 'string', default: 'smollm2-135m/q4_0/1' },
    /** our KV cache's element type: f16 (as llama.cpp's default) or f32 */
    'kv-cache': { type: 'string', default: 'f16' },
    /** fewer, shorter runs: one shape and dtype, 1 thread, 2 rounds, the generator path only, a 1,024-token long prompt */
    quick: { type: 'boolean', default: false },
  },
});
if (values.quick) {
  const given = new Set(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')[0]));
  const quick: Record<string, string> = { shapes: 'smollm2-135m', dtypes: 'q4_0', threads: '1', prompt: '128', decode: '32', rounds: '2', 'long-prompt': '1024', 'long-decode': '16' };
  for (const [key, value] of Object.entries(quick)) if (!given.has(key)) (values as Record<string, unknown>)[key] = value;
}
const rounds = Math.max(1, Number(values.rounds));
const LLAMA_PATHS = values.quick ? ['llama.cpp'] : ['llama.cpp', 'llama.cpp-controlled'];
const root = path.resolve(import.meta.dirname, '..');
/** SmolLM2's tokenizer, for random-weight models of its shape (from ../shared/models beside the checkout). */
const SMOLLM_TOKENIZER = path.join(root, '../shared/models/smollm2-135m-instruct-tokenizer/tokenizer.json');
const modelsDir = path.join(os.tmpdir(), 'corolla-bench-models');
fs.mkdirSync(modelsDir, { recursive: true });
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });

function model(shape: string, dtype: string): string {
  const file = path.join(modelsDir, `${shape}-${dtype}.gguf`);
  if (!fs.existsSync(file)) {
    process.stderr.write(`making ${shape} ${dtype}…\n`);
    execFileSync(process.execPath, [path.join(root, 'bin/corolla.js'), 'dev', 'make-model', '--shape', shape, '--dtype', dtype, '--out', file, '--tokenizer', SMOLLM_TOKENIZER], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return file;
}

interface Measurement {
  engine: string;
  threads: number;
  load_ms: number;
  prefill_tok_s: number;
  warm_prefill_tok_s: number;
  decode_tok_s: number;
  peak_rss_mb: number;
}

function measure(engine: string, file: string, threads: number, prompt: string, decode: string): Measurement | { error: string } {
  const tsx = path.join(root, 'node_modules/.bin/tsx');
  const r = spawnSync(tsx, [path.join(root, 'bench/engine-worker.ts'), engine, file, String(threads), prompt, decode, values['kv-cache']!], {
    encoding: 'utf8',
    timeout: Number(values.timeout) * 1000,
    env: { ...process.env, COROLLA_QUIET: '1' },
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Measurement;
  } catch {
    return { error: r.error ? `${String(r.error)} (after ${values.timeout} s: llama.cpp with 2 threads has stalled on 2-vCPU machines)` : `exit ${r.status}: ${r.stderr.slice(-500)}` };
  }
}


interface Medians {
  runs: number;
  prefill_tok_s: number;
  warm_prefill_tok_s: number;
  decode_tok_s: number;
  peak_rss_mb: number;
  load_ms: number;
  errors: string[];
}

/** Runs every engine `rounds` times, alternating within each round, and returns each engine's medians. */
function compare(engines: readonly string[], file: string, threads: number, prompt: string, decode: string): Record<string, Medians> {
  const runs: Record<string, Measurement[]> = Object.fromEntries(engines.map((e) => [e, []]));
  const errors: Record<string, string[]> = Object.fromEntries(engines.map((e) => [e, []]));
  for (let round = 0; round < rounds; round++) {
    // alternate the order too, so neither engine always runs on a machine the other just warmed (or heated)
    for (const engine of round % 2 ? [...engines].reverse() : engines) {
      if (errors[engine]!.length > 0 && runs[engine]!.length === 0 && round > 0) continue; // it failed before: do not wait again
      const m = measure(engine, file, threads, prompt, decode);
      if ('error' in m) errors[engine]!.push(m.error);
      else runs[engine]!.push(m);
    }
  }
  return Object.fromEntries(
    engines.map((e) => {
      const ms = runs[e]!;
      const of = (figure: keyof Measurement) => (ms.length ? median(ms.map((m) => m[figure] as number)) : NaN);
      return [e, { runs: ms.length, prefill_tok_s: of('prefill_tok_s'), warm_prefill_tok_s: of('warm_prefill_tok_s'), decode_tok_s: of('decode_tok_s'), peak_rss_mb: of('peak_rss_mb'), load_ms: of('load_ms'), errors: errors[e]! }];
    }),
  );
}

/** The faster llama.cpp path for one figure: its value and its name. */
function fastest(result: Record<string, Medians>, figure: 'prefill_tok_s' | 'warm_prefill_tok_s' | 'decode_tok_s'): { value: number; path: string } | undefined {
  const ok = LLAMA_PATHS.filter((p) => result[p] && result[p].runs > 0).map((p) => ({ value: result[p]![figure], path: p }));
  return ok.sort((a, b) => b.value - a.value)[0];
}

const rows: Record<string, unknown>[] = [];
const ratios: { decode: number[]; prefill: number[]; warmPrefill: number[]; rss: number[] } = { decode: [], prefill: [], warmPrefill: [], rss: [] };
const fmt = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : x.toFixed(1));
process.stdout.write(`${'shape'.padEnd(14)}${'dtype'.padEnd(7)}${'thr'.padEnd(5)}${'engine'.padEnd(22)}${'runs'.padStart(5)}${'prefill tok/s'.padStart(14)}${'warm prefill'.padStart(14)}${'decode tok/s'.padStart(14)}${'peak RSS MB'.padStart(13)}\n`);
function report(label: string, result: Record<string, Medians>): Record<string, unknown> {
  for (const [engine, m] of Object.entries(result)) {
    process.stdout.write(`${label}${engine.padEnd(22)}${String(m.runs).padStart(5)}${fmt(m.prefill_tok_s).padStart(14)}${fmt(m.warm_prefill_tok_s).padStart(14)}${fmt(m.decode_tok_s).padStart(14)}${fmt(m.peak_rss_mb).padStart(13)}${m.errors.length ? `  failed ${m.errors.length}×: ${m.errors[0]!.split('\n')[0]}` : ''}\n`);
  }
  const ours = result.corolla!;
  const decode = fastest(result, 'decode_tok_s');
  const prefill = fastest(result, 'prefill_tok_s');
  const warmPrefill = fastest(result, 'warm_prefill_tok_s');
  const row: Record<string, unknown> = { engines: result };
  if (ours.runs > 0 && decode && prefill && warmPrefill) {
    row.decode_ratio = ours.decode_tok_s / decode.value;
    row.prefill_ratio = ours.prefill_tok_s / prefill.value;
    row.warm_prefill_ratio = ours.warm_prefill_tok_s / warmPrefill.value;
    row.llama_decode_path = decode.path;
    row.llama_prefill_path = prefill.path;
    row.rss_ratio = ours.peak_rss_mb / result[decode.path]!.peak_rss_mb;
  }
  return row;
}

for (const shape of values.shapes!.split(',')) {
  for (const dtype of values.dtypes!.split(',')) {
    const file = model(shape, dtype);
    for (const threads of values.threads!.split(',').map(Number)) {
      const result = compare(['corolla', ...LLAMA_PATHS], file, threads, values.prompt!, values.decode!);
      const row: Record<string, unknown> = { shape, dtype, threads, ...report(`${shape.padEnd(14)}${dtype.padEnd(7)}${String(threads).padEnd(5)}`, result) };
      if (row.decode_ratio !== undefined) {
        ratios.decode.push(row.decode_ratio as number);
        ratios.prefill.push(row.prefill_ratio as number);
        ratios.warmPrefill.push(row.warm_prefill_ratio as number);
        ratios.rss.push(row.rss_ratio as number);
      }
      rows.push(row);
    }
  }
}

let long: Record<string, unknown> | undefined;
if (values['long-config'] !== 'none') {
  const [shape, dtype, threads] = values['long-config']!.split('/') as [string, string, string];
  const result = compare(['corolla', ...LLAMA_PATHS], model(shape, dtype), Number(threads ?? 1), values['long-prompt']!, values['long-decode']!);
  long = { shape, dtype, threads: Number(threads ?? 1), prompt: Number(values['long-prompt']), decode: Number(values['long-decode']), ...report(`${shape.padEnd(14)}${dtype.padEnd(7)}${String(threads).padEnd(5)}`.replace(/ +$/, '') + ` @${values['long-prompt']} `, result) };
}

const min = (xs: number[]) => (xs.length ? Math.min(...xs) : null);
const summary = {
  min_decode_ratio: min(ratios.decode),
  min_prefill_ratio: min(ratios.prefill),
  min_warm_prefill_ratio: min(ratios.warmPrefill),
  max_rss_ratio: ratios.rss.length ? Math.max(...ratios.rss) : null,
  long_context_decode_ratio: (long?.decode_ratio as number | undefined) ?? null,
  long_context_prompt: long ? Number(values['long-prompt']) : null,
  llama_paths: LLAMA_PATHS,
  kv_cache: values['kv-cache'],
  rounds,
  configurations: rows.length,
  compared: ratios.decode.length,
};
fs.writeFileSync(path.join(root, 'bench/results/engine.json'), JSON.stringify({ date: new Date().toISOString(), cpu: os.cpus()[0]?.model, prompt: Number(values.prompt), decode: Number(values.decode), rows, long, summary }, null, 2));
process.stdout.write(JSON.stringify(summary) + '\n');
