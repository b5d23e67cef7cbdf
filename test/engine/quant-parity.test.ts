// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
/**
 * Every quantization type against llama.cpp (node-llama-cpp, 1 thread), on files we write: teacher-forced over the
 * same tokens, our mean KL divergence from the F32 model must be at most 1.1× llama.cpp's on the same file, and our
 * top-1 agreement with the F32 model within one point of llama.cpp's.
 * - stories260K (a trained model, so top-1 agreement means something), re-quantized by requantizeGguf to each type:
 *   its rows are 64 wide, so as in llama.cpp the K types fall back (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0) and only
 *   the 32-element types run there.
 * - stories-256 (random weights, every row a whole number of 256-element super-blocks): the K types and the mixes
 *   run as K types. A random network's near-flat distributions make top-1 flips a coin toss for both engines, so
 *   there we only require ours not to be worse than llama.cpp's by more than one point.
 * llama.cpp loading these files also checks that our quantizers write ggml's byte layouts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalModel } from '../../src/inference/local-model.js';
import { compareLogits, windowLogits } from '../../src/inference/perplexity.js';
import { DEFAULT_MODEL_PATH } from '../../src/model/default-model.js';
import { MAKE_MODEL_VERSION } from '../../src/model/make-model.js';
import { requantizeGguf, type QuantScheme } from '../../src/model/quant-mix.js';
import { llamaCppLogits, sharedLlama } from '../support/llama-cpp.js';
import { testModel } from '../support/models.js';
import { STORY_TEXT } from '../support/story-text.js';

const cacheDir = path.join(os.tmpdir(), 'corolla-test-models');

/** stories260K re-quantized to `scheme` (once per machine and writer version). */
function requantizedStories(scheme: QuantScheme): string {
  fs.mkdirSync(cacheDir, { recursive: true });
  const out = path.join(cacheDir, `stories260K-${scheme}-v${MAKE_MODEL_VERSION}.gguf`);
  if (!fs.existsSync(out)) {
    const tmp = `${out}.${process.pid}.partial`;
    requantizeGguf(DEFAULT_MODEL_PATH, scheme, tmp);
    fs.renameSync(tmp, out);
  }
  return out;
}

async function ourLogits(file: string, ids: readonly number[]): Promise<Float32Array[]> {
  const model = await LocalModel.open(file);
  const rows: Float32Array[] = [];
  try {
    await windowLogits(model, ids, 0, (_, r) => rows.push(...r));
  } finally {
    await model.close();
  }
  return rows;
}

async function storyIds(file: string, limit: number): Promise<number[]> {
  const model = await LocalModel.open(file);
  const ids = [model.tokenizer.special.bos!, ...model.tokenizer.encode(STORY_TEXT, { addBos: false })].slice(0, limit);
  await model.close();
  return ids;
}

/** One family of files: the F32 model and its logits, from both engines, computed once. */
function family(f32: string, tokens: number) {
  let baseline: Promise<{ ids: number[]; ours: Float32Array[]; llama: Float32Array[] }> | undefined;
  return () =>
    (baseline ??= (async () => {
      const ids = await storyIds(f32, tokens);
      return { ids, ours: await ourLogits(f32, ids), llama: await llamaCppLogits(f32, ids, { threads: 1 }) };
    })());
}

async function check(label: string, file: string, base: ReturnType<typeof family>, twoSided: boolean) {
  const { ids, ours: ourBase, llama: llamaBase } = await base();
  const { klMean: oursKl, top1Agree: oursTop1 } = compareLogits(ourBase, await ourLogits(file, ids));
  const { klMean: theirsKl, top1Agree: theirsTop1 } = compareLogits(llamaBase, await llamaCppLogits(file, ids, { threads: 1 }));
  const ours = { kl: oursKl, top1: oursTop1 };
  const theirs = { kl: theirsKl, top1: theirsTop1 };
  console.log(
    `${label} over ${ids.length - 1} tokens: KL ours ${ours.kl.toExponential(3)}, llama.cpp ${theirs.kl.toExponential(3)} (×${(ours.kl / theirs.kl).toFixed(3)}); ` +
      `top-1 ours ${(ours.top1 * 100).toFixed(1)}%, llama.cpp ${(theirs.top1 * 100).toFixed(1)}%`,
  );
  expect(ours.kl).toBeLessThanOrEqual(1.1 * theirs.kl);
  expect(ours.top1).toBeGreaterThanOrEqual(theirs.top1 - 0.01);
  if (twoSided) expect(ours.top1).toBeLessThanOrEqual(theirs.top1 + 0.01);
}

describe('quantized models against llama.cpp: KL ≤ 1.1× and top-1 within one point', () => {
  afterAll(async () => {
    await (await sharedLlama()).dispose();
  });

  const stories = family(DEFAULT_MODEL_PATH, 500);
  it.each(['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k_m', 'q5_k_m'] as const)('stories260K %s', async (scheme) => {
    await check(`stories260K ${scheme}`, requantizedStories(scheme), stories, true);
  }, 300_000);

  const random = family(testModel('stories-256', 'f32'), 300);
  it.each(['q4_k', 'q5_k', 'q6_k', 'q4_k_m', 'q5_k_m'] as const)('stories-256 (rows of whole super-blocks) %s', async (dtype) => {
    await check(`stories-256 ${dtype}`, testModel('stories-256', dtype), random, false);
  }, 300_000);
});
