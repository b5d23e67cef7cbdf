/**
 * Each architecture's path through the engine, against llama.cpp (node-llama-cpp, 1 thread, f32 KV cache), on
 * random-weight GGUFs of its shape written by make-model: Llama 2 (multi-head attention, untied head), Llama 3.2
 * (grouped-query attention, llama3 rope scaling through the `rope_freqs` tensor), Qwen2.5 (q/k/v biases, RoPE on
 * head halves), Mistral (a sliding window of 32 in the metadata).
 *
 * Our engine is teacher-forced along llama.cpp's greedy tokens (prompt of 40, then 24 steps: positions 40..63).
 * Bound: the same greedy tokens and max |logit diff| < 1e-3 (measured ≤ 1e-4; what remains is summation order).
 * Each feature is also shown to matter: dropping it moves the logits by more than 10× the bound, so a path that
 * ignored it would fail here.
 *
 * Sliding window: llama.cpp's loaders for the llama and qwen2 architectures never read
 * `{arch}.attention.sliding_window` (its converter does not write it for Mistral either), so llama.cpp attends to
 * every past token. Our GGUF loader follows it, and the test runs past the window to show both that this matches
 * and that windowed attention (what a Hugging Face Mistral config gets) would not.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openModel } from '../../src/model/load.js';
import type { ModelShapeName } from '../../src/model/make-model.js';
import type { ModelConfig, ModelSource } from '../../src/model/types.js';
import { llamaCppGreedy, sharedLlama, type ReferenceRun } from '../support/llama-cpp.js';
import { testModel } from '../support/models.js';
import { engineAlong, randomTokens, worstDiff } from '../support/parity.js';

const BOUND = 1e-3;
const PROMPT = [1, ...randomTokens(39, 512, 11)];
const STEPS = 24;

/** The same model with some tensors hidden or config fields changed: a deliberately wrong engine input. */
function variant(source: ModelSource, config: Partial<ModelConfig>, hide: (name: string) => boolean = () => false): ModelSource {
  return {
    location: source.location,
    format: source.format,
    config: { ...source.config, ...config },
    tensorNames: () => source.tensorNames().filter((n) => !hide(n)),
    readTensor: (name) => source.readTensor(name),
    close: () => source.close(),
  };
}

async function run(shape: ModelShapeName): Promise<{ source: ModelSource; reference: ReferenceRun }> {
  const path = testModel(shape, 'f32');
  const reference = await llamaCppGreedy(path, PROMPT, STEPS, { threads: 1 });
  const source = await openModel(path);
  const mine = await engineAlong(source, PROMPT, reference.tokens);
  const worst = worstDiff(mine.logits, reference.logits);
  const agree = mine.tokens.filter((t, i) => t === reference.tokens[i]).length;
  console.log(`${shape}: max |logit diff| ${worst.toExponential(2)}, greedy ${agree}/${STEPS} agree`);
  expect(mine.tokens).toEqual(reference.tokens);
  expect(worst).toBeLessThan(BOUND);
  return { source, reference };
}

/** How far a variant of the model lands from llama.cpp. */
async function offBy(source: ModelSource, reference: ReferenceRun): Promise<number> {
  return worstDiff((await engineAlong(source, PROMPT, reference.tokens)).logits, reference.logits);
}

describe('architectures against llama.cpp', () => {
  afterAll(async () => (await sharedLlama()).dispose());

  it('Llama 2: multi-head attention, untied output', async () => {
    const { source } = await run('llama-2-tiny');
    expect(source.config.numKvHeads).toBe(source.config.numHeads);
    expect(source.config.tieWordEmbeddings).toBe(false);
    source.close();
  }, 120_000);

  it('Llama 3.2: rope scaling through rope_freqs', async () => {
    const { source, reference } = await run('llama-3.2-tiny');
    expect(source.tensorNames()).toContain('rope_freqs');
    const unscaled = await offBy(variant(source, {}, (n) => n === 'rope_freqs'), reference);
    console.log(`llama-3.2-tiny without rope_freqs: ${unscaled.toExponential(2)}`);
    expect(unscaled).toBeGreaterThan(10 * BOUND);
    source.close();
  }, 120_000);

  it('Qwen2.5: q/k/v biases and RoPE on head halves', async () => {
    const { source, reference } = await run('qwen2.5-tiny');
    expect(source.config.ropeInterleaved).toBe(false);
    const unbiased = await offBy(variant(source, { attentionBias: false }, (n) => n.endsWith('.bias')), reference);
    const interleaved = await offBy(variant(source, { ropeInterleaved: true }), reference);
    console.log(`qwen2.5-tiny without biases: ${unbiased.toExponential(2)}, with interleaved RoPE: ${interleaved.toExponential(2)}`);
    expect(unbiased).toBeGreaterThan(10 * BOUND);
    expect(interleaved).toBeGreaterThan(10 * BOUND);
    source.close();
  }, 120_000);

  it('Mistral: llama.cpp ignores the sliding window in GGUF metadata, and so do we', async () => {
    const { source, reference } = await run('mistral-tiny');
    expect((source as { gguf?: { metadata: Map<string, unknown> } }).gguf?.metadata.get('llama.attention.sliding_window')).toBe(32);
    expect(source.config.slidingWindow).toBeUndefined();
    // Past the window (positions 40..63 with a window of 32), windowed attention gives other logits.
    const windowed = await offBy(variant(source, { slidingWindow: 32 }), reference);
    console.log(`mistral-tiny with the window applied: ${windowed.toExponential(2)}`);
    expect(windowed).toBeGreaterThan(10 * BOUND);
    source.close();
  }, 120_000);
});
