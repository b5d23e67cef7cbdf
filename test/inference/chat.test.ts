/** Chat over one session: later turns feed only the new part of the conversation, and reply as a fresh session would. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chat } from '../../src/inference/chat.js';
import { ContextOverflowError } from '../../src/inference/errors.js';
import { generate } from '../../src/inference/generate.js';
import type { InferenceSession, LanguageModel } from '../../src/inference/language-model.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { renderChat } from '../../src/model/tokenizer/index.js';
import { STORIES_GGUF } from '../support/models.js';

let local: LocalModel;
/** Every id fed to each session opened through `model`, one list per session. */
let fedLog: number[][];
let model: LanguageModel;

beforeAll(async () => {
  local = await LocalModel.open(STORIES_GGUF);
  fedLog = [];
  model = {
    tokenizer: local.tokenizer,
    config: local.config,
    close: async () => {},
    openSession: async (maxLength) => {
      const session = await local.openSession(maxLength);
      const fed: number[] = [];
      fedLog.push(fed);
      return { next: (ids, options) => (fed.push(...ids), session.next(ids, options)), close: () => session.close() } satisfies InferenceSession;
    },
  };
});
afterAll(async () => {
  await local?.close();
});

const options = { temperature: 0, maxTokens: 12, stopTokens: [] };

async function collect(stream: AsyncIterable<{ text: string }>): Promise<string> {
  let text = '';
  for await (const event of stream) text += event.text;
  return text;
}

describe('Chat', () => {
  it('reuses the KV cache: the second turn feeds only the new ids, and replies as a fresh session does', async () => {
    const chat = new Chat(model, { context: 256, system: 'Tell a story.' });
    const first = chat.reply('Once upon a time', options);
    await collect(first);
    const fedAfterFirst = fedLog[0]!.length;
    const second = chat.reply('Tom had a dog', options);
    const reply = await collect(second);
    expect(chat.sessionsOpened).toBe(1);
    expect(fedLog).toHaveLength(1);

    // The whole conversation of the second turn, as a fresh session sees it.
    const tokenizer = model.tokenizer;
    const conversation = tokenizer.encode(renderChat(tokenizer, chat.messages.slice(0, 4), { addGenerationPrompt: true }), { addBos: false });
    const fed = fedLog[0]!;
    // The second turn fed only the ids after what the cache held, and the cache then held exactly the conversation.
    expect(second.stats.promptTokens).toBeLessThan(conversation.length);
    const secondStart = conversation.length - second.stats.promptTokens;
    expect(secondStart).toBeGreaterThan(0);
    expect(secondStart).toBeLessThanOrEqual(fedAfterFirst);
    expect(fed.slice(0, conversation.length)).toEqual(conversation);

    const fresh = await local.openSession(256);
    const expected = await collect(generate(fresh, tokenizer, conversation, options));
    await fresh.close();
    expect(reply).toBe(expected);
    expect(chat.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
    expect(chat.messages[4]!.content).toBe(reply);
    await chat.close();
  });

  it('drops the oldest turns and starts a new session when the next reply would overflow the context', async () => {
    fedLog = [];
    const tokenizer = model.tokenizer;
    const firstTurn = tokenizer.encode(renderChat(tokenizer, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Once upon a time' }], { addGenerationPrompt: true }), { addBos: false });
    const chat = new Chat(model, { context: firstTurn.length + 40, system: 'Be brief.' });
    await collect(chat.reply('Once upon a time', { ...options, maxTokens: 20 }));
    const second = chat.reply('Tom had a dog', { ...options, maxTokens: 20 });
    await collect(second);
    expect(chat.sessionsOpened).toBe(2);
    expect(chat.messages.map((m) => m.content).slice(0, 2)).toEqual(['Be brief.', 'Tom had a dog']);
    await chat.close();
    await expect(collect(new Chat(model, { context: 32 }).reply('a'.repeat(100), options))).rejects.toBeInstanceOf(ContextOverflowError);
  });
});
