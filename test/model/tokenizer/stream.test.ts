// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { afterAll, describe, expect, it } from 'vitest';
import { openGgufSource } from '../../../src/model/gguf-source.js';
import { createTokenizer, readLlama2cTokenizer, type CorollaTokenizer } from '../../../src/model/tokenizer/index.js';
import { LLAMA2_TOKENIZER_BIN, STORIES_GGUF, STORIES_TOKENIZER } from '../../support/models.js';
import { ROUND_TRIP_TEXTS, smolLmBpeData, smolLmHfData } from '../../support/tokenizers.js';

function streamAll(tok: CorollaTokenizer, ids: readonly number[], context?: readonly number[]): { parts: string[]; text: string } {
  const decoder = tok.streamDecoder(context ? { context } : {});
  const parts = ids.map((id) => decoder.push(id));
  parts.push(decoder.flush());
  return { parts, text: parts.join('') };
}

const gguf = openGgufSource(STORIES_GGUF);
afterAll(() => gguf.close());

const TOKENIZERS: Array<[string, () => CorollaTokenizer]> = [
  ['llama2c tok512', () => createTokenizer(readLlama2cTokenizer(STORIES_TOKENIZER))],
  ['llama2c Llama 2', () => createTokenizer(readLlama2cTokenizer(LLAMA2_TOKENIZER_BIN))],
  ['sentencepiece GGUF', () => createTokenizer(gguf.tokenizer!)],
  ['bpe SmolLM2', () => createTokenizer(smolLmBpeData())],
  ['hf SmolLM2', () => createTokenizer(smolLmHfData())],
];

const TEXTS = [...ROUND_TRIP_TEXTS, '🦙🦙🦙', 'a🎉b', '👨‍👩‍👧‍👦', 'é'];

describe.each(TOKENIZERS)('stream decoder: %s', (_name, make) => {
  const tok = make();

  it('concatenated deltas equal decode(ids), with and without BOS', () => {
    for (const text of TEXTS) {
      for (const addBos of [true, false]) {
        const ids = tok.encode(text, { addBos });
        const { parts, text: streamed } = streamAll(tok, ids);
        expect(streamed, JSON.stringify(text)).toBe(tok.decode(ids));
        for (const part of parts) expect(part).not.toContain('\uFFFD');
      }
    }
  });

  it('holds back a character split over byte tokens until it is complete', () => {
    const ids = tok.encode('🦙', { addBos: false });
    const { parts, text } = streamAll(tok, ids);
    expect(text.trim()).toBe('🦙');
    // The emoji is several byte tokens in every one of these vocabularies: some pushes must return nothing,
    // and the emoji must come out whole in a single delta.
    expect(ids.length).toBeGreaterThan(1);
    expect(parts.slice(0, -1)).toContain('');
    expect(parts.filter((p) => p.trim().length > 0).map((p) => p.trim())).toEqual(['🦙']);
  });

  it('emits an invalid byte sequence as U+FFFD, as decode does', () => {
    const valid = tok.encode('ok', { addBos: false });
    const broken = tok.encode('🦙', { addBos: false }).slice(0, -1); // the emoji without its last byte
    expect(tok.decode(broken)).toContain('\uFFFD');
    for (const ids of [[...valid, ...broken, ...valid], [...valid, ...broken]]) {
      expect(streamAll(tok, ids).text).toBe(tok.decode(ids));
    }
  });
});

describe('stream decoder context', () => {
  it('llama2c: the first piece loses its space only after BOS', () => {
    const tok = createTokenizer(readLlama2cTokenizer(STORIES_TOKENIZER));
    const generated = tok.encode('Once upon a time', { addBos: false });
    expect(streamAll(tok, generated).text).toBe(' Once upon a time');
    expect(streamAll(tok, generated, [1]).text).toBe('Once upon a time');
    const prompt = tok.encode('Once upon');
    const rest = tok.encode(' a time', { addBos: false }).slice(1); // drop the dummy prefix
    expect(streamAll(tok, rest, prompt).text).toBe(tok.decode([...prompt, ...rest]).slice('Once upon'.length));
  });

  it('hf: a stream continuing a prompt emits only the continuation', () => {
    const tok = createTokenizer(smolLmHfData());
    const all = tok.encode('The answer is 🦙 indeed.');
    const prompt = all.slice(0, 3);
    const rest = all.slice(3);
    expect(tok.decode(prompt) + streamAll(tok, rest, prompt).text).toBe(tok.decode(all));
  });

  it('keeps special tokens in the stream when asked', () => {
    const tok = createTokenizer(smolLmBpeData());
    const ids = tok.encode('<|im_start|>user\nHi<|im_end|>');
    const decoder = tok.streamDecoder({ keepSpecial: true });
    expect(ids.map((id) => decoder.push(id)).join('') + decoder.flush()).toBe('<|im_start|>user\nHi<|im_end|>');
  });
});
