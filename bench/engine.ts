/**
 * Engine benchmark: Corolla's engine against llama.cpp (node-llama-cpp) on the same GGUF files, at equal thread
 * counts, for the SmolLM2-135M and Llama-3.2-1B shapes at f32, q8_0 and q4_0 (random weights from
 * `corolla dev make-model`). Prefill of a 512-token prompt, decode of 128 tokens, peak RSS, each run in its own
 * process. Writes bench/results/engine.json; the last stdout line is a JSON summary.
 *
 *   npm run bench:engine [-- --shapes smollm2-135m --dtypes q4_0 --threads 1 --prompt 512 --decode 128]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    shapes: { type: 'string', default: 'smollm2-135m,llama-3.2-1b' },
    dtypes: { type: 'string', default: 'f32,q8_0,q4_0' },
    threads: { type: 'string', default: '1,2' },
    prompt: { type: 'string', default: '512' },
    decode: { type: 'string', default: '128' },
    timeout: { type: 'string', default: '900' },
  },
});
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
  decode_tok_s: number;
  peak_rss_mb: number;
}

function measure(engine: string, file: string, threads: number): Measurement | { error: string } {
  const tsx = path.join(root, 'node_modules/.bin/tsx');
  const r = spawnSync(tsx, [path.join(root, 'bench/engine-worker.ts'), engine, file, String(threads), values.prompt!, values.decode!], {
    encoding: 'utf8',
    timeout: Number(values.timeout) * 1000,
    env: { ...process.env, COROLLA_QUIET: '1' },
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Measurement;
  } catch {
    return { error: r.error ? String(r.error) : `exit ${r.status}: ${r.stderr.slice(-500)}` };
  }
}

const rows: Record<string, unknown>[] = [];
const ratios: { decode: number[]; prefill: number[] } = { decode: [], prefill: [] };
const fmt = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(1));
process.stdout.write(`${'shape'.padEnd(14)}${'dtype'.padEnd(7)}${'thr'.padEnd(5)}${'engine'.padEnd(11)}${'prefill tok/s'.padStart(14)}${'decode tok/s'.padStart(14)}${'peak RSS MB'.padStart(13)}\n`);
for (const shape of values.shapes!.split(',')) {
  for (const dtype of values.dtypes!.split(',')) {
    const file = model(shape, dtype);
    for (const threads of values.threads!.split(',').map(Number)) {
      const ours = measure('corolla', file, threads);
      const ref = measure('llama.cpp', file, threads);
      for (const m of [ours, ref]) {
        const name = m === ours ? 'corolla' : 'llama.cpp';
        if ('error' in m) process.stdout.write(`${shape.padEnd(14)}${dtype.padEnd(7)}${String(threads).padEnd(5)}${name.padEnd(11)}  failed: ${m.error.split('\n')[0]}\n`);
        else process.stdout.write(`${shape.padEnd(14)}${dtype.padEnd(7)}${String(threads).padEnd(5)}${name.padEnd(11)}${fmt(m.prefill_tok_s).padStart(14)}${fmt(m.decode_tok_s).padStart(14)}${String(m.peak_rss_mb).padStart(13)}\n`);
      }
      const row: Record<string, unknown> = { shape, dtype, threads, corolla: ours, llamacpp: ref };
      if (!('error' in ours) && !('error' in ref)) {
        row.decode_ratio = ours.decode_tok_s / ref.decode_tok_s;
        row.prefill_ratio = ours.prefill_tok_s / ref.prefill_tok_s;
        ratios.decode.push(row.decode_ratio as number);
        ratios.prefill.push(row.prefill_ratio as number);
      }
      rows.push(row);
    }
  }
}
const summary = {
  min_decode_ratio: ratios.decode.length ? Math.min(...ratios.decode) : null,
  min_prefill_ratio: ratios.prefill.length ? Math.min(...ratios.prefill) : null,
  configurations: rows.length,
  compared: ratios.decode.length,
};
fs.writeFileSync(path.join(root, 'bench/results/engine.json'), JSON.stringify({ date: new Date().toISOString(), cpu: os.cpus()[0]?.model, prompt: Number(values.prompt), decode: Number(values.decode), rows, summary }, null, 2));
process.stdout.write(JSON.stringify(summary) + '\n');
