/**
 * Speculative decoding in the generation loop: prompt lookup proposes, one step verifies, and the output is plain
 * greedy decoding's, token for token, whether the proposals are all right, all wrong, or mixed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, generateFrom, promptIds, type GenerateOptions } from '../../src/inference/generate.js';
import type { InferenceSession } from '../../src/inference/language-model.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { NgramProposer, type Proposer } from '../../src/inference/speculative.js';
import { STORIES_GGUF, testModel } from '../support/models.js';

const PROMPT = 'Once upon a time, there was a little girl named Lily. Lily loved to play with her ball. One day, Lily';
const MAX_TOKENS = 80;

let stories: LocalModel;
beforeAll(async () => {
  stories = await LocalModel.open(STORIES_GGUF);
});
afterAll(async () => {
  await stories?.close();
});

async function run(model: LocalModel, prompt: string, options: GenerateOptions) {
  const stream = generateFrom(model, prompt, options);
  const ids: number[] = [];
  let text = '';
  for await (const event of stream) {
    if (event.token >= 0) ids.push(event.token);
    text += event.text;
  }
  return { ids, text, stats: stream.stats };
}

/** Proposes what a reference generation says comes next (every proposal right), or its successor id (every one wrong). */
const fromReference = (prompt: readonly number[], reference: readonly number[], wrong = false): Proposer => ({
  propose: (history, limit) => reference.slice(history.length - prompt.length, history.length - prompt.length + limit).map((id) => (wrong ? (id + 1) % 512 : id)),
});

describe('NgramProposer (prompt lookup)', () => {
  it("proposes what followed the latest earlier occurrence of the history's suffix, longest n-gram first", () => {
    const proposer = new NgramProposer(3);
    // suffix [1, 2, 3] occurs at 0 (followed by 9 9) and [2, 3] at 6 (followed by 7): the 3-gram wins
    expect(proposer.propose([1, 2, 3, 9, 9, 5, 2, 3, 7, 8, 1, 2, 3], 4)).toEqual([9, 9, 5, 2]);
    // only [3] recurs: the nearest earlier 3 (followed by 4, 5)
    expect(proposer.propose([3, 6, 6, 3, 4, 5, 3], 2)).toEqual([4, 5]);
    expect(proposer.propose([3, 6, 6, 3, 4, 5, 3], 10)).toEqual([4, 5, 3]);
    expect(proposer.propose([1, 2, 3, 4], 4)).toEqual([]);
    expect(proposer.propose([1], 4)).toEqual([]);
    expect(proposer.propose([1, 2, 1], 0)).toEqual([]);
    expect(() => new NgramProposer(0)).toThrow(RangeError);
  });
});

describe('speculative decoding, local model', () => {
  it('stories260K: greedy text and ids equal plain decoding, in fewer forward passes', async () => {
    const plain = await run(stories, PROMPT, { temperature: 0, maxTokens: MAX_TOKENS, stopTokens: [] });
    const fast = await run(stories, PROMPT, { temperature: 0, maxTokens: MAX_TOKENS, stopTokens: [], speculative: { proposer: 'ngram', k: 4 } });
    expect(plain.ids).toHaveLength(MAX_TOKENS);
    expect(fast.ids).toEqual(plain.ids);
    expect(fast.text).toBe(plain.text);
    const s = fast.stats.speculation!;
    expect(s.accepted).toBeGreaterThan(0);
    expect(s.accepted).toBeLessThanOrEqual(s.proposed);
    expect(fast.stats.decodeSteps).toBeLessThan(plain.stats.decodeSteps);
    // every generated token after the first came from a forward pass's row: its first, or one after an accepted proposal
    expect(fast.stats.decodeSteps + s.accepted).toBe(plain.stats.decodeSteps);
  });

  it('all proposals right, all wrong: the same output; the session ends holding exactly what plain decoding fed', async () => {
    const prompt = promptIds(stories.tokenizer, PROMPT);
    const plain = await run(stories, PROMPT, { temperature: 0, maxTokens: 40, stopTokens: [] });
    for (const wrong of [false, true]) {
      const session = await stories.openSession(prompt.length + 40);
      const rewinds: number[] = [];
      let held = 0;
      const watched: InferenceSession = {
        next: async (ids) => ((held += ids.length), session.next(ids)),
        nextRows: async (ids) => ((held += ids.length), session.nextRows!(ids)),
        rewind: async (position) => (rewinds.push(position), (held = position), session.rewind!(position)),
        close: () => session.close(),
      };
      const stream = generate(watched, stories.tokenizer, prompt, { temperature: 0, maxTokens: 40, stopTokens: [], speculative: { proposer: fromReference(prompt, plain.ids, wrong), k: 3 } });
      const ids: number[] = [];
      for await (const event of stream) ids.push(event.token);
      expect(ids.filter((id) => id >= 0)).toEqual(plain.ids);
      const s = stream.stats.speculation!;
      if (wrong) {
        expect(s.accepted).toBe(0);
        expect(rewinds.length).toBe(s.steps);
      } else {
        expect(s.accepted).toBe(s.proposed);
        expect(rewinds).toEqual([]);
        expect(stream.stats.decodeSteps).toBe(Math.ceil(39 / 4)); // 3 proposals + 1: 4 tokens a step
      }
      // the last sampled token is never fed, as in plain decoding
      expect(held).toBe(prompt.length + 39);
      await session.close();
    }
  });

  it('a stop token or stop string inside accepted proposals ends the generation where plain decoding does', async () => {
    const plain = await run(stories, PROMPT, { temperature: 0, maxTokens: MAX_TOKENS, stopTokens: [] });
    const stopToken = plain.ids[30]!;
    const stopText = stories.tokenizer.decode(plain.ids.slice(20, 23));
    for (const extra of [{ stopTokens: [stopToken] }, { stopTokens: [], stop: [stopText] }]) {
      const a = await run(stories, PROMPT, { temperature: 0, maxTokens: MAX_TOKENS, ...extra });
      const b = await run(stories, PROMPT, { temperature: 0, maxTokens: MAX_TOKENS, ...extra, speculative: { proposer: 'ngram', k: 5 } });
      expect(b.ids).toEqual(a.ids);
      expect(b.text).toBe(a.text);
      expect(b.stats.finishReason).toBe('stop');
    }
  });

  it('with a temperature the loop decodes one token at a time: same seed, same tokens, no speculation', async () => {
    const options = { temperature: 0.9, topK: 40, seed: 11, maxTokens: 40, stopTokens: [] };
    const plain = await run(stories, PROMPT, options);
    const asked = await run(stories, PROMPT, { ...options, speculative: { proposer: 'ngram' } });
    expect(asked.ids).toEqual(plain.ids);
    expect(asked.stats.speculation).toBeUndefined();
    expect(asked.stats.decodeSteps).toBe(plain.stats.decodeSteps);
  });

  it('bad settings are refused before any step', async () => {
    await expect(run(stories, PROMPT, { temperature: 0, maxTokens: 4, speculative: { proposer: 'ngram', k: 0 } })).rejects.toThrow(RangeError);
    await expect(run(stories, PROMPT, { temperature: 0, maxTokens: 4, speculative: { proposer: 'markov' as 'ngram' } })).rejects.toThrow(RangeError);
  });

  it('a generated model (random weights, q8_0): greedy output equal with and without speculation', async () => {
    const model = await LocalModel.open(testModel('stories-tiny', 'q8_0'));
    try {
      const prompt = 'the cat and the dog and the cat and the dog and the cat';
      const plain = await run(model, prompt, { temperature: 0, maxTokens: 60, stopTokens: [] });
      const fast = await run(model, prompt, { temperature: 0, maxTokens: 60, stopTokens: [], speculative: { proposer: 'ngram', k: 4 } });
      expect(fast.ids).toEqual(plain.ids);
      expect(fast.stats.speculation!.steps).toBeGreaterThan(0);
    } finally {
      await model.close();
    }
  });
});
