/**
 * Quantization types, ours against llama.cpp (node-llama-cpp, 1 thread), on files we write:
 * - accuracy: mean KL divergence from the F32 model and top-1 agreement with it, teacher-forced over the story
 *   text (test/support/story-text.ts): on stories260K re-quantized (a trained model; its 64-wide rows make the K
 *   types fall back, as llama.cpp does) and on stories-256 (random weights, rows of whole 256-element super-blocks);
 * - speed: decode tok/s at SmolLM2-135M's shape (random weights; 576-wide rows fall back as llama.cpp's quantize
 *   does, so only ffn_down keeps K types), each engine in its own process (bench/engine-worker.ts), runs
 *   alternating between engines, medians reported.
 * Writes bench/results/quant.json (not with --no-accuracy); the last stdout line is a JSON summary.
 *
 *   npx tsx bench/quant.ts [--types q8_0,q4_k_m] [--runs 3] [--decode 64] [--no-speed] [--no-accuracy]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LocalModel } from '../src/inference/local-model.js';
import { compareLogits, windowLogits } from '../src/inference/perplexity.js';
import { DEFAULT_MODEL_PATH } from '../src/model/default-model.js';
import { requantizeGguf, type QuantScheme } from '../src/model/quant-mix.js';
import { llamaCppLogits, sharedLlama } from '../test/support/llama-cpp.js';
import { STORY_TEXT } from '../test/support/story-text.js';
import { median } from './support/stats.js';

const { values } = parseArgs({
  options: {
    types: { type: 'string', default: 'q8_0,q4_0,q4_1,q5_0,q5_1,q4_k,q5_k,q6_k,q4_k_m,q5_k_m' },
    runs: { type: 'string', default: '3' },
    prompt: { type: 'string', default: '16' },
    decode: { type: 'string', default: '64' },
    'no-speed': { type: 'boolean' },
    'no-accuracy': { type: 'boolean' },
  },
});
const root = path.resolve(import.meta.dirname, '..');
const SMOLLM_TOKENIZER = path.join(root, '../shared/models/smollm2-135m-instruct-tokenizer/tokenizer.json');
const modelsDir = path.join(os.tmpdir(), 'corolla-bench-models');
fs.mkdirSync(modelsDir, { recursive: true });
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
const types = values.types!.split(',') as QuantScheme[];

function made(shape: string, dtype: string): string {
  const file = path.join(modelsDir, `${shape}-${dtype}.gguf`);
  if (!fs.existsSync(file)) {
    process.stderr.write(`making ${shape} ${dtype}…\n`);
    execFileSync(process.execPath, [path.join(root, 'bin/corolla.js'), 'dev', 'make-model', '--shape', shape, '--dtype', dtype, '--out', file, '--tokenizer', SMOLLM_TOKENIZER], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return file;
}

function requantized(scheme: QuantScheme): string {
  const file = path.join(modelsDir, `stories260K-${scheme}.gguf`);
  if (!fs.existsSync(file)) requantizeGguf(DEFAULT_MODEL_PATH, scheme, file);
  return file;
}

async function ourRows(file: string, ids: readonly number[]): Promise<Float32Array[]> {
  const model = await LocalModel.open(file, { threads: 1 });
  const rows: Float32Array[] = [];
  await windowLogits(model, ids, 0, (_, r) => rows.push(...r));
  await model.close();
  return rows;
}

async function accuracy(f32: string, file: (type: QuantScheme) => string) {
  const model = await LocalModel.open(f32);
  const ids = [model.tokenizer.special.bos!, ...model.tokenizer.encode(STORY_TEXT, { addBos: false })];
  await model.close();
  const ourBase = await ourRows(f32, ids);
  const llamaBase = await llamaCppLogits(f32, ids, { threads: 1 });
  const out: Record<string, { ours: ReturnType<typeof compareLogits>; llamacpp: ReturnType<typeof compareLogits> }> = {};
  for (const type of types) {
    out[type] = { ours: compareLogits(ourBase, await ourRows(file(type), ids)), llamacpp: compareLogits(llamaBase, await llamaCppLogits(file(type), ids, { threads: 1 })) };
  }
  return { tokens: ids.length - 1, byType: out };
}

function decodeTokS(engine: string, file: string): number | undefined {
  const r = spawnSync(path.join(root, 'node_modules/.bin/tsx'), [path.join(root, 'bench/engine-worker.ts'), engine, file, '1', values.prompt!, values.decode!], {
    encoding: 'utf8',
    timeout: 600_000,
    env: { ...process.env, COROLLA_QUIET: '1' },
  });
  try {
    return (JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { decode_tok_s: number }).decode_tok_s;
  } catch {
    process.stderr.write(`${engine} on ${file} failed: ${r.stderr.slice(-300)}\n`);
    return undefined;
  }
}


const withAccuracy = !values['no-accuracy'];
const stories = withAccuracy ? await accuracy(DEFAULT_MODEL_PATH, requantized) : undefined;
const random = withAccuracy ? await accuracy(made('stories-256', 'f32'), (type) => made('stories-256', type)) : undefined;
if (withAccuracy) await (await sharedLlama()).dispose();

const speed: Record<string, { ours?: number; llamacpp?: number }> = {};
if (!values['no-speed']) {
  for (const type of types) {
    const file = made('smollm2-135m', type);
    const runs = { ours: [] as number[], llamacpp: [] as number[] };
    for (let i = 0; i < Number(values.runs); i++) {
      const a = decodeTokS('corolla', file);
      const b = decodeTokS('llama.cpp', file);
      if (a !== undefined) runs.ours.push(a);
      if (b !== undefined) runs.llamacpp.push(b);
    }
    const medianOf = (xs: number[]) => (xs.length === 0 ? undefined : median(xs)); // none: no figure
    speed[type] = { ours: medianOf(runs.ours), llamacpp: medianOf(runs.llamacpp) };
    process.stderr.write(`${type}: decode tok/s ours ${runs.ours.join(', ')}; llama.cpp ${runs.llamacpp.join(', ')}\n`);
  }
}

const f = (x: number | undefined, digits = 1) => (x === undefined ? '—' : x.toFixed(digits));
const e = (x: number | undefined) => (x === undefined ? '—' : x.toExponential(2));
process.stdout.write(`accuracy: stories260K over ${stories?.tokens ?? '—'} tokens (K types fall back), stories-256 over ${random?.tokens ?? '—'} tokens; speed: SmolLM2-135M shape, 1 thread\n`);
process.stdout.write('| type | KL ours | KL llama.cpp | top-1 ours / llama.cpp | KL ours (256-row) | KL llama.cpp (256-row) | decode tok/s ours | decode tok/s llama.cpp |\n|---|---|---|---|---|---|---|---|\n');
for (const type of types) {
  const s = stories?.byType[type];
  const r = random?.byType[type];
  process.stdout.write(
    `| ${type} | ${e(s?.ours.klMean)} | ${e(s?.llamacpp.klMean)} | ${f(s && s.ours.top1Agree * 100)}% / ${f(s && s.llamacpp.top1Agree * 100)}% | ${e(r?.ours.klMean)} | ${e(r?.llamacpp.klMean)} | ${f(speed[type]?.ours)} | ${f(speed[type]?.llamacpp)} |\n`,
  );
}
// A speed-only run leaves the recorded results (and their accuracy figures) alone.
if (withAccuracy) {
  const result = { stories260K: stories, stories256: random, speed, decode: Number(values.decode), runs: Number(values.runs) };
  fs.writeFileSync(path.join(root, 'bench/results/quant.json'), JSON.stringify(result, null, 2) + '\n');
}
process.stdout.write(JSON.stringify({ types, speed }) + '\n');
