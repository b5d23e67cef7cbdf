/**
 * Long prompts (issue 7): a prompt is prefilled in bounded chunks, each attending to the cache before it, so no graph
 * call builds attention over the whole prompt; a prompt filling the context works; a longer one is a typed error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextLengthError } from '../../src/engine/errors.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import { generate, generateFrom } from '../../src/inference/generate.js';
import type { InferenceSession } from '../../src/inference/language-model.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { PromptTooLongError } from '../../src/inference/errors.js';
import { STORIES_GGUF } from '../support/models.js';

let model: LocalModel;
beforeAll(async () => {
  model = await LocalModel.open(STORIES_GGUF);
});
afterAll(async () => {
  await model?.close();
});

/** A deterministic prompt of `n` ids (no BOS/EOS among them). */
const promptOf = (n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + 11) % 500));
const greedy = { temperature: 0, stopTokens: [] as number[] };

async function collect(stream: AsyncIterable<{ token: number }>): Promise<number[]> {
  const ids: number[] = [];
  for await (const { token } of stream) if (token >= 0) ids.push(token);
  return ids;
}

describe('chunked prefill', () => {
  it('the loop feeds a long prompt in steps of at most prefillChunkTokens (old code: one step of the whole prompt)', async () => {
    const inner = await model.openSession(700);
    const steps: number[][] = [];
    const session: InferenceSession = { next: (ids) => (steps.push([...ids]), inner.next(ids)), close: () => inner.close() };
    const prompt = promptOf(600);
    await collect(generate(session, undefined, prompt, { ...greedy, maxTokens: 2, prefillChunkTokens: 128 }));
    await session.close();
    expect(steps.slice(0, 5).map((s) => s.length)).toEqual([128, 128, 128, 128, 88]);
    expect(steps.slice(0, 5).flat()).toEqual(prompt);
    expect(steps.slice(5).map((s) => s.length)).toEqual([1]);
  });

  it('a 1,500-token prompt chunked by 128 gives the same greedy tokens as one whole-prompt step', async () => {
    const prompt = promptOf(1500);
    const chunked = await collect(generateFrom(model, prompt, { ...greedy, maxTokens: 24, prefillChunkTokens: 128 }));
    const whole = await collect(generateFrom(model, prompt, { ...greedy, maxTokens: 24, prefillChunkTokens: 1500 }));
    expect(chunked).toHaveLength(24);
    expect(chunked).toEqual(whole);
  });

  it('the engine runs a long step as chunks: bit-identical to the caller splitting it (old code: one call, other rounding)', async () => {
    const span = await loadSpan(model['source' as never], { start: 0, end: model.config.numLayers }, { prefillChunkTokens: 100 });
    try {
      const H = span.hiddenSize;
      const hidden = model.embeddings.embed(promptOf(350));
      span.openSession('whole', 350);
      span.openSession('split', 350);
      const whole = await span.step({ sessionId: 'whole', hidden });
      const parts: Float32Array[] = [];
      for (let t = 0; t < 350; t += 100) parts.push(await span.step({ sessionId: 'split', hidden: hidden.subarray(t * H, Math.min(350, t + 100) * H) }));
      const split = new Float32Array(350 * H);
      parts.reduce((at, part) => (split.set(part, at), at + part.length), 0);
      expect(Buffer.from(whole.buffer).equals(Buffer.from(split.buffer))).toBe(true);
      expect(span.session('whole')!.position).toBe(350);
    } finally {
      await span.dispose();
    }
  });

  it('a prompt of exactly context − maxTokens works; one token more is REQUEST_TOO_LARGE, never a crash', async () => {
    const context = model.config.maxPositionEmbeddings;
    const fits = await collect(generateFrom(model, promptOf(context - 4), { ...greedy, maxTokens: 4 }));
    expect(fits).toHaveLength(4);
    const tooLong = collect(generateFrom(model, promptOf(context - 3), { ...greedy, maxTokens: 4 }));
    await expect(tooLong).rejects.toBeInstanceOf(PromptTooLongError);
    await expect(collect(generateFrom(model, promptOf(context + 10), { ...greedy, maxTokens: 1 }))).rejects.toMatchObject({ code: 'REQUEST_TOO_LARGE' });
  });

  it('the engine refuses a session longer than the model context (ContextLengthError, REQUEST_TOO_LARGE)', async () => {
    const context = model.config.maxPositionEmbeddings;
    expect(() => model.span.openSession('too-long', context + 1)).toThrow(ContextLengthError);
    await expect(model.span.forward(new Float32Array((context + 1) * model.span.hiddenSize), context + 1)).rejects.toMatchObject({ code: 'REQUEST_TOO_LARGE' });
  });
});
