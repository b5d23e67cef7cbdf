// needs ../shared/models (stories260K)
/**
 * Seeds decide sampled text: equal seeds give equal text, different seeds different text (a sampler that ignored
 * its seed, or an engine that drifted between runs, fails here), in the library and through `corolla generate`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateText } from '../../src/inference/generate.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { killCorollaProcesses, runCorolla } from '../support/cli.js';
import { STORIES_GGUF } from '../support/models.js';

const PROMPT = 'Once upon a time';
const SAMPLING = { temperature: 1, topK: 40, maxTokens: 40, stopTokens: [] as number[] };

let model: LocalModel;
beforeAll(async () => {
  model = await LocalModel.open(STORIES_GGUF, { threads: 1 });
});
afterAll(async () => {
  await model?.close();
  killCorollaProcesses();
});

describe('seeded generation', () => {
  it('gives equal text for equal seeds and different text for different seeds', async () => {
    const texts = new Map<number, string>();
    for (const seed of [1, 2, 3, 4]) texts.set(seed, await generateText(model, PROMPT, { ...SAMPLING, seed }));
    for (const seed of [1, 2, 3, 4]) expect(await generateText(model, PROMPT, { ...SAMPLING, seed })).toBe(texts.get(seed));
    // Four seeds, four different continuations (40 tokens at temperature 1 over a 512-token vocabulary).
    expect(new Set(texts.values()).size).toBe(4);
    for (const text of texts.values()) expect(text.length).toBeGreaterThan(20);
  });

  it('temperature 0 ignores the seed', async () => {
    const greedy = { ...SAMPLING, temperature: 0 };
    expect(await generateText(model, PROMPT, { ...greedy, seed: 1 })).toBe(await generateText(model, PROMPT, { ...greedy, seed: 2 }));
  });

  it('corolla generate --seed: the same seed prints the same text in two processes, another seed other text', async () => {
    const run = async (seed: number) => {
      const result = await runCorolla(['generate', '--model', STORIES_GGUF, '--prompt', PROMPT, '--temperature', '1', '--max-tokens', '30', '--seed', String(seed)]);
      expect(result.code, result.stderr).toBe(0);
      return result.stdout;
    };
    const [a, b, c] = await Promise.all([run(11), run(11), run(12)]);
    expect(a.length).toBeGreaterThan(20);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });
});
