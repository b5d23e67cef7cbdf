/** The generation loop's own behaviour: cancellation (also mid-step), stop strings, attribution pass-through. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, generateFrom } from '../../src/inference/generate.js';
import type { InferenceSession, ServerUsage } from '../../src/inference/language-model.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { STORIES_GGUF } from '../support/models.js';

let model: LocalModel;
beforeAll(async () => {
  model = await LocalModel.open(STORIES_GGUF);
});
afterAll(async () => {
  await model?.close();
});

describe('generate', () => {
  it('an abort while a step is in flight ends with finishReason abort', async () => {
    const inner = await model.openSession(64);
    const abort = new AbortController();
    let steps = 0;
    // the third step is aborted while it runs, and then fails as an aborted remote step would
    const session: InferenceSession = {
      next: async (ids) => {
        if (++steps === 3) {
          abort.abort();
          throw new Error('step aborted');
        }
        return inner.next(ids);
      },
      close: () => inner.close(),
    };
    const stream = generate(session, model.tokenizer, [1], { temperature: 0, maxTokens: 10, signal: abort.signal });
    const tokens: number[] = [];
    for await (const event of stream) tokens.push(event.token);
    expect(tokens).toHaveLength(2);
    expect(stream.stats).toMatchObject({ finishReason: 'abort', generatedTokens: 2, decodeSteps: 1 });
    await session.close();
  });

  it('an abort between tokens ends with finishReason abort, and generateFrom closes its session', async () => {
    const abort = new AbortController();
    const stream = generateFrom(model, 'Once upon a time', { temperature: 0, maxTokens: 30, signal: abort.signal });
    let n = 0;
    for await (const _ of stream) if (++n === 4) abort.abort();
    expect(stream.stats).toMatchObject({ finishReason: 'abort', generatedTokens: 4 });
  });

  it('an empty prompt starts from BOS; usage() becomes stats.servers', async () => {
    const inner = await model.openSession(16);
    const usage: ServerUsage[] = [{ peerId: 'p', blocks: { start: 0, end: 5 }, promptTokens: 1, generatedTokens: 2, replayedTokens: 0, failed: false }];
    const stream = generate({ next: (ids) => inner.next(ids), close: () => inner.close(), usage: () => usage }, model.tokenizer, [model.tokenizer.special.bos!], { temperature: 0, maxTokens: 3, stopTokens: [] });
    for await (const _ of stream);
    expect(stream.stats.servers).toEqual(usage);
    await inner.close();
    const fromEmpty = generateFrom(model, '', { temperature: 0, maxTokens: 3, stopTokens: [] });
    for await (const _ of fromEmpty);
    expect(fromEmpty.stats.promptTokens).toBe(1);
  });

  it('stop strings end the generation before them', async () => {
    const full = generateFrom(model, 'Once upon a time', { temperature: 0, maxTokens: 30, stopTokens: [] });
    let text = '';
    for await (const event of full) text += event.text;
    const stop = text.slice(10, 14);
    const cut = generateFrom(model, 'Once upon a time', { temperature: 0, maxTokens: 30, stopTokens: [], stop: [stop] });
    let shown = '';
    for await (const event of cut) shown += event.text;
    expect(shown).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.stats.finishReason).toBe('stop');
  });
});
