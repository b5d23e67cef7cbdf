/**
 * Weights staged in a file are held once: onnxruntime maps them, packs each weight and unmaps it, so loading a span
 * grows the process by about its packed weights. Weights handed over in memory are held twice (ours and onnxruntime's
 * packed copy), which is what this test tells apart. Each load runs in its own process, so its peak is its own.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeModel, MAKE_MODEL_VERSION } from '../../src/model/make-model.js';

const SCRIPT = path.resolve(import.meta.dirname, '../support/span-memory.ts');
// 16 blocks of f32 weights, about 200 MB: large against what a process and onnxruntime hold anyway.
const SHAPE = {
  name: 'staging-f32', hiddenSize: 512, numLayers: 16, numHeads: 8, numKvHeads: 8, intermediateSize: 1536,
  vocabSize: 512, contextLength: 512, ropeTheta: 10000, rmsNormEps: 1e-5, tied: true, tokenizer: 'stories',
} as const;
const BLOCK_MB = (4 * 512 * 512 + 3 * 512 * 1536) * 4 / 2 ** 20;
const WEIGHTS_MB = SHAPE.numLayers * BLOCK_MB;

async function measure(model: string, mode: 'staged' | 'memory'): Promise<{ before: number; after: number; peak: number }> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', SCRIPT, model, mode], { timeout: 120_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

describe.skipIf(process.platform !== 'linux')('memory of a span built from staged weights', () => {
  let model: string;
  beforeAll(() => {
    model = path.join(os.tmpdir(), 'corolla-test-models', `staging-f32-v${MAKE_MODEL_VERSION}.gguf`);
    if (fs.existsSync(model)) return;
    fs.mkdirSync(path.dirname(model), { recursive: true });
    const partial = `${model}.${process.pid}.partial`;
    makeModel({ shape: SHAPE, dtype: 'f32', out: partial, seed: 3 });
    fs.renameSync(partial, model);
  }, 120_000);

  it('grows by about one copy of the weights, where in-memory weights cost two', async () => {
    const staged = await measure(model, 'staged');
    const memory = await measure(model, 'memory');
    const growth = (m: typeof staged) => (m.peak - m.before) / WEIGHTS_MB;
    console.log(`${WEIGHTS_MB.toFixed(0)} MB of weights: peak growth ×${growth(staged).toFixed(2)} staged, ×${growth(memory).toFixed(2)} in memory`);
    expect(growth(staged)).toBeLessThan(1.5);
    expect(growth(memory)).toBeGreaterThan(1.8);
  }, 240_000);
});
