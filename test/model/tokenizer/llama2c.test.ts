// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelNotFoundError } from '../../../src/model/errors.js';
import {
  createTokenizer,
  InvalidTokenizerError,
  parseLlama2cTokenizer,
  readLlama2cTokenizer,
} from '../../../src/model/tokenizer/index.js';
import { tempDir } from '../../support/files.js';
import { LLAMA2_TOKENIZER_BIN, STORIES_TOKENIZER } from '../../support/models.js';
import { LLAMA2_REFERENCE, ROUND_TRIP_TEXTS } from '../../support/tokenizers.js';

describe('llama2.c tokenizer.bin reader', () => {
  it('reads tok512.bin to EOF', () => {
    const data = readLlama2cTokenizer(STORIES_TOKENIZER);
    expect(data.kind).toBe('llama2c');
    expect(data.tokens).toHaveLength(512);
    expect(data.scores).toHaveLength(512);
    expect(data.maxTokenLength).toBe(7);
    expect(data.tokens.slice(0, 4)).toEqual(['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
    expect(data.tokens[258]).toBe('<0xFF>');
    expect(data.special).toEqual({ unk: 0, bos: 1, eos: [2], addBos: true });
  });

  it('reads exactly vocabSize tokens when given', () => {
    expect(readLlama2cTokenizer(STORIES_TOKENIZER, 300).tokens).toHaveLength(300);
  });

  it('rejects a truncated file and a missing one with typed errors', () => {
    const bytes = readFileSync(STORIES_TOKENIZER);
    expect(() => parseLlama2cTokenizer(bytes.subarray(0, bytes.length - 3))).toThrow(InvalidTokenizerError);
    expect(() => parseLlama2cTokenizer(bytes, 513)).toThrow(/truncated at token 512/);
    const dir = tempDir('corolla-tok-');
    writeFileSync(join(dir, 'short.bin'), Uint8Array.of(1, 0));
    expect(() => readLlama2cTokenizer(join(dir, 'short.bin'))).toThrow(InvalidTokenizerError);
    expect(() => readLlama2cTokenizer(join(dir, 'absent.bin'))).toThrow(ModelNotFoundError);
  });
});

describe('llama2.c encode (stories260K tok512)', () => {
  const tok = createTokenizer(readLlama2cTokenizer(STORIES_TOKENIZER));

  it('matches run.c on the reference vector', () => {
    expect(tok.encode('Once upon a time', { addBos: true })).toEqual([1, 403, 407, 261, 378]);
    expect(tok.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]); // addBos defaults to true
    expect(tok.encode('Once upon a time', { addBos: false })).toEqual([403, 407, 261, 378]);
  });

  it('encodes the empty string to BOS alone (no dummy prefix)', () => {
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { addBos: false })).toEqual([]);
  });

  it('falls back to byte tokens (byte + 3) for characters outside the vocabulary', () => {
    // 🎉 is F0 9F 8E 89: none of it is a piece of this 512-token vocabulary.
    const ids = tok.encode('🎉', { addBos: false });
    expect(ids.slice(-4)).toEqual([0xf0 + 3, 0x9f + 3, 0x8e + 3, 0x89 + 3]);
  });

  it('round trips text through decode, including unicode, emoji and edge spaces', () => {
    for (const text of ROUND_TRIP_TEXTS) {
      expect(tok.decode(tok.encode(text)), JSON.stringify(text)).toBe(text);
    }
  });

  it('drops the leading space only right after BOS, as run.c does', () => {
    const ids = tok.encode('Once upon a time', { addBos: false });
    expect(tok.decode(ids)).toBe(' Once upon a time');
    expect(tok.decode([1, ...ids])).toBe('Once upon a time');
  });

  it('maps <s> and </s> in text to their ids and skips them in decode unless keepSpecial', () => {
    const ids = tok.encode('Lily<s>Tom</s>', { addBos: false });
    expect(ids).toContain(1);
    expect(ids[ids.length - 1]).toBe(2);
    expect(tok.decode([1, 403, 2])).toBe('Once');
    expect(tok.decode([1, 403, 2], { keepSpecial: true })).toBe('<s>Once</s>');
    expect(tok.idToToken(1)).toBe('\n<s>\n');
  });

  it('decodes "<0xHH>" pieces to raw bytes', () => {
    expect(tok.decode([0x41 + 3, 0x0a + 3])).toBe('A\n');
  });
});

describe('llama2.c encode (Llama 2, 32000 pieces)', () => {
  const tok = createTokenizer(readLlama2cTokenizer(LLAMA2_TOKENIZER_BIN));

  it('has the 32000-token vocabulary', () => {
    expect(tok.vocabSize).toBe(32000);
    expect(tok.idToToken(15043)).toBe(' Hello');
  });

  it('gives the ids SentencePiece gives', () => {
    expect(tok.encode('Hello world')).toEqual([1, 15043, 3186]);
    for (const [text, ids] of LLAMA2_REFERENCE) {
      expect(tok.encode(text, { addBos: false }), JSON.stringify(text)).toEqual(ids);
    }
  });

  it('round trips', () => {
    for (const text of ROUND_TRIP_TEXTS) {
      expect(tok.decode(tok.encode(text)), JSON.stringify(text)).toBe(text);
    }
  });

  it('encodes 10k characters quickly', () => {
    const text = ROUND_TRIP_TEXTS.join(' ').repeat(200).slice(0, 10_000);
    const start = performance.now();
    const ids = tok.encode(text);
    const ms = performance.now() - start;
    expect(tok.decode(ids)).toBe(text);
    expect(ms).toBeLessThan(2000); // ~25 ms here; 2 s holds on a loaded 2-core machine
  });
});
