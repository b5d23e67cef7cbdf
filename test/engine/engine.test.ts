// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CacheBudgetError, InvalidSpanError, InvalidStepError } from '../../src/engine/errors.js';
import { generate } from '../../src/inference/generate.js';
import { loadEmbeddings } from '../../src/engine/embeddings.js';
import { loadLocalModel } from '../../src/inference/local-model.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import { loadLmHead } from '../../src/engine/lm-head.js';
import type { SpanExecutor } from '../../src/engine/types.js';
import { openModel } from '../../src/model/load.js';
import { createTokenizer } from '../../src/model/tokenizer/index.js';
import type { ModelSource } from '../../src/model/types.js';
import { STORIES_BIN, STORIES_GGUF, STORIES_TOKENIZER } from '../support/models.js';

const argmax = (a: Float32Array) => a.reduce((best, v, i) => (v > a[best]! ? i : best), 0);
const top5 = (a: Float32Array) =>
  [...a]
    .map((v, i) => [i, v] as const)
    .sort((x, y) => y[1] - x[1])
    .slice(0, 5);

describe('engine on stories260K', () => {
  let source: ModelSource;
  beforeAll(async () => {
    source = await openModel(STORIES_GGUF);
  });
  afterAll(() => source.close());

  it('reproduces the llama2.c logits test vectors', async () => {
    const model = await loadLocalModel(source);
    const session = await model.openSession(16);
    const expected = [
      [[403, 17.023516], [385, 15.406213], [410, 13.108263], [317, 12.769166], [407, 12.418087]],
      [[407, 18.459986], [383, 14.291061], [261, 10.897967], [403, 10.662053], [432, 10.313799]],
      [[261, 17.136963], [407, 11.710209], [383, 11.169443], [286, 10.211064], [272, 9.922194]],
    ];
    const inputs = [1, 403, 407];
    for (let pos = 0; pos < 3; pos++) {
      const logits = await session.next([inputs[pos]!]);
      const top = top5(logits);
      expected[pos]!.forEach(([id, value], i) => {
        expect(top[i]![0]).toBe(id);
        expect(Math.abs(top[i]![1] - value!)).toBeLessThan(1e-4);
      });
      if (pos === 0) {
        [-6.222911, 8.404342, -6.223737, -6.222542].forEach((v, i) => expect(Math.abs(logits[i]! - v)).toBeLessThan(1e-4));
        // The sum of 512 logits accumulates their rounding: 1e-3 is 1e-6 relative.
        expect(Math.abs(logits.reduce((s, v) => s + v, 0) - -1070.1717)).toBeLessThan(1e-3);
      }
    }
    await model.close();
  });

  it('runs on 2 threads (thread-pool settings accepted) with the logits of 1 thread', async () => {
    const logitsOf = async (threads: number) => {
      const model = await loadLocalModel(source, { threads });
      const session = await model.openSession(8);
      await session.next([1, 403]);
      const logits = await session.next([407]);
      await model.close();
      return logits;
    };
    const [one, two] = [await logitsOf(1), await logitsOf(2)];
    expect(argmax(two)).toBe(argmax(one));
    two.forEach((v, i) => expect(Math.abs(v - one[i]!)).toBeLessThan(1e-4));
  });

  it('gives identical greedy text from the .gguf and the .bin checkpoint', async () => {
    const texts: string[] = [];
    for (const [path, tokenizerPath] of [[STORIES_GGUF, undefined], [STORIES_BIN, STORIES_TOKENIZER]] as const) {
      const src = await openModel(path, { tokenizerPath });
      const tokenizer = createTokenizer(src.tokenizer!);
      const model = await loadLocalModel(src);
      let text = '';
      for await (const e of generate(await model.openSession(128), tokenizer, [1], { temperature: 0, maxTokens: 60 })) text += e.text;
      texts.push(text);
      await model.close();
      src.close();
    }
    expect(texts[0]).toMatch(/^Once upon a time, there was a little girl named Lily\. She loved to play outside in the park\./);
    expect(texts[1]).toBe(texts[0]);
  });

  it('gives bit-identical logits from blocks [0,2) then [2,5) as from the whole model', async () => {
    const head = loadEmbeddings(source);
    const tail = await loadLmHead(source);
    const whole = await loadSpan(source, { start: 0, end: 5 });
    const first = await loadSpan(source, { start: 0, end: 2 });
    const second = await loadSpan(source, { start: 2, end: 5 });
    for (const span of [whole, first, second]) span.openSession('s', 64);
    let ids = [1, 403, 407, 261, 378];
    for (let step = 0; step < 12; step++) {
      const hidden = head.embed(ids);
      const a = await tail.logits(await whole.step({ sessionId: 's', hidden }));
      const b = await tail.logits(await second.step({ sessionId: 's', hidden: await first.step({ sessionId: 's', hidden }) }));
      expect(b).toEqual(a);
      ids = [argmax(a)];
    }
    for (const span of [whole, first, second]) await span.dispose();
  });

  describe('sessions', () => {
    let span: SpanExecutor;
    const head = () => loadEmbeddings(source);
    beforeAll(async () => {
      span = await loadSpan(source, { start: 0, end: 5 }, { maxBatch: 4, cacheBudgetBytes: 5 * 2 * 32 * 4 * 1000 });
    });
    afterAll(() => span.dispose());

    /** Feeds `prompt` then `steps` greedy tokens one at a time; returns every decode output. */
    async function run(id: string, prompt: number[], steps: number): Promise<{ outputs: Float32Array[]; tokens: number[] }> {
      const h = head();
      const tail = await loadLmHead(source);
      const outputs: Float32Array[] = [];
      const tokens: number[] = [];
      let out = await span.step({ sessionId: id, hidden: h.embed(prompt) });
      for (let i = 0; i < steps; i++) {
        const t = argmax(await tail.logits(out));
        tokens.push(t);
        out = await span.step({ sessionId: id, hidden: h.embed([t]) });
        outputs.push(out);
      }
      return { outputs, tokens };
    }

    it('batched decode equals sequential decode', async () => {
      const prompts = [[1, 403], [1, 407, 261], [1, 385], [1, 410, 317, 12]];
      const sequential: { outputs: Float32Array[]; tokens: number[] }[] = [];
      for (const [i, p] of prompts.entries()) {
        span.openSession(`seq${i}`, 64);
        sequential.push(await run(`seq${i}`, p, 8));
        span.closeSession(`seq${i}`);
      }
      const h = head();
      const tail = await loadLmHead(source);
      prompts.forEach((_, i) => span.openSession(`bat${i}`, 64));
      let outs = await Promise.all(prompts.map((p, i) => span.step({ sessionId: `bat${i}`, hidden: h.embed(p) })));
      for (let step = 0; step < 8; step++) {
        const tokens = (await tail.logitsBatch(outs)).map(argmax);
        tokens.forEach((t, i) => expect(t).toBe(sequential[i]!.tokens[step]));
        outs = await span.stepBatch(tokens.map((t, i) => ({ sessionId: `bat${i}`, hidden: h.embed([t]) })));
        outs.forEach((o, i) => {
          const ref = sequential[i]!.outputs[step]!;
          for (let j = 0; j < o.length; j++) expect(Math.abs(o[j]! - ref[j]!)).toBeLessThan(1e-5);
        });
      }
      prompts.forEach((_, i) => span.closeSession(`bat${i}`));
    });

    it('a rewind followed by replay equals the original', async () => {
      span.openSession('orig', 64);
      const original = await run('orig', [1, 403, 407], 10);
      // Rewind to position 3 + 4 = after the prompt and four generated tokens, then replay the rest.
      const h = head();
      let position = 3 + 4;
      for (let i = 4; i < 10; i++) {
        const out = await span.step({ sessionId: 'orig', hidden: h.embed([original.tokens[i]!]), position });
        expect(out).toEqual(original.outputs[i]);
        position++;
      }
      span.rewind('orig', 5);
      expect(span.session('orig')!.position).toBe(5);
      span.closeSession('orig');
    });

    it('refuses sessions beyond the memory budget with a clear error, and frees on close', () => {
      span.openSession('big', 600);
      expect(() => span.openSession('too-big', 600)).toThrow(CacheBudgetError);
      expect(() => span.openSession('too-big', 600)).toThrow(/only 400 tokens are left/);
      span.closeSession('big');
      span.openSession('fits-now', 600);
      span.closeSession('fits-now');
    });

    it('rejects steps beyond max_length, at future positions, or of the wrong width', async () => {
      span.openSession('small', 4);
      const h = head();
      await expect(span.step({ sessionId: 'small', hidden: h.embed([1, 2, 3, 4, 5]) })).rejects.toThrow(InvalidStepError);
      await expect(span.step({ sessionId: 'small', hidden: h.embed([1]), position: 3 })).rejects.toThrow(/position 3/);
      await expect(span.step({ sessionId: 'small', hidden: new Float32Array(10) })).rejects.toThrow(InvalidStepError);
      await expect(span.step({ sessionId: 'nope', hidden: h.embed([1]) })).rejects.toThrow(/no open session/);
      span.closeSession('small');
    });
  });

  it('rejects a block range outside the model', async () => {
    await expect(loadSpan(source, { start: 3, end: 9 })).rejects.toThrow(InvalidSpanError);
    await expect(loadSpan(source, { start: 2, end: 2 })).rejects.toThrow(InvalidSpanError);
  });
});
