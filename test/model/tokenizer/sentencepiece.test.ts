// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { afterAll, describe, expect, it } from 'vitest';
import { openGgufSource } from '../../../src/model/gguf-source.js';
import {
  createTokenizer,
  InvalidTokenizerError,
  readLlama2cTokenizer,
  SentencePieceTokenizer,
} from '../../../src/model/tokenizer/index.js';
import type { TokenizerData } from '../../../src/model/types.js';
import { LLAMA2_TOKENIZER_BIN, STORIES_GGUF, STORIES_TOKENIZER } from '../../support/models.js';
import { LLAMA2_REFERENCE, ROUND_TRIP_TEXTS } from '../../support/tokenizers.js';

describe('SentencePiece from the stories260K GGUF metadata', () => {
  const source = openGgufSource(STORIES_GGUF);
  afterAll(() => source.close());
  const data = source.tokenizer!;
  const tok = createTokenizer(data);
  const llama2c = createTokenizer(readLlama2cTokenizer(STORIES_TOKENIZER));

  it('is a sentencepiece tokenizer with llama special ids', () => {
    expect(data.kind).toBe('sentencepiece');
    expect(tok).toBeInstanceOf(SentencePieceTokenizer);
    expect(tok.vocabSize).toBe(512);
    expect(tok.special).toMatchObject({ bos: 1, eos: [2], unk: 0, addBos: true });
  });

  it('matches the run.c reference vector', () => {
    expect(tok.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('gives the same ids as the llama2.c tokenizer for the same texts', () => {
    const texts = [...ROUND_TRIP_TEXTS, 'Lily and Tom went to the park.', 'a\nb\n\n  c', 'Lily<s>and</s> Tom', ''];
    for (const text of texts) {
      expect(tok.encode(text), JSON.stringify(text)).toEqual(llama2c.encode(text));
      expect(tok.encode(text, { addBos: false }), JSON.stringify(text)).toEqual(llama2c.encode(text, { addBos: false }));
    }
  });

  it('round trips', () => {
    for (const text of ROUND_TRIP_TEXTS) {
      expect(tok.decode(tok.encode(text)), JSON.stringify(text)).toBe(text);
    }
  });

  it('maps control tokens in the text to their ids and skips them in decode unless keepSpecial', () => {
    const ids = tok.encode('<s>Once</s>', { addBos: false });
    expect(ids[0]).toBe(1);
    expect(ids[ids.length - 1]).toBe(2);
    expect(tok.decode(ids)).toBe('Once');
    expect(tok.decode(ids, { keepSpecial: true })).toBe('<s>Once</s>');
    expect(tok.idToToken(403)).toBe('\u2581Once');
  });
});

/** The Llama 2 vocabulary as a GGUF "llama" tokenizer carries it: "▁" for spaces, types inferred. */
function llama2SentencePiece(): TokenizerData {
  const bin = readLlama2cTokenizer(LLAMA2_TOKENIZER_BIN);
  return {
    kind: 'sentencepiece',
    tokens: bin.tokens.map((t, id) => (id < 3 ? t.trim() : t.replaceAll(' ', '\u2581'))),
    scores: bin.scores,
    special: bin.special,
    addSpacePrefix: true,
  };
}

describe('SentencePiece with the Llama 2 vocabulary', () => {
  const tok = createTokenizer(llama2SentencePiece());

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

  it('encodes 10k characters quickly, even as one long word', () => {
    const text = ROUND_TRIP_TEXTS.join(' ').repeat(200).slice(0, 10_000);
    const word = Array.from({ length: 10_000 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('');
    for (const input of [text, word]) {
      const start = performance.now();
      const ids = tok.encode(input);
      expect(performance.now() - start).toBeLessThan(2000); // ~100 ms here; 2 s holds on a loaded 2-core machine
      expect(tok.decode(ids)).toBe(input);
    }
  });

  it('treats user-defined tokens as whole tokens and decodes them as text', () => {
    const base = llama2SentencePiece() as Extract<TokenizerData, { kind: 'sentencepiece' }>;
    const tokens = [...base.tokens, '<|tool|>'];
    const types = tokens.map((t, id) => (id === 0 ? 2 : id < 3 ? 3 : /^<0x[0-9A-F]{2}>$/.test(t) ? 6 : id === tokens.length - 1 ? 4 : 1));
    const custom = createTokenizer({ ...base, tokens, scores: [...base.scores, 0], tokenTypes: types });
    const ids = custom.encode('call<|tool|>now');
    expect(ids).toContain(32000);
    // As in llama.cpp, the text after a special token gets its own "▁" prefix again.
    expect(ids.slice(-2)).toEqual([32000, custom.encode('now', { addBos: false })[0]]);
    expect(custom.decode(ids)).toBe('call<|tool|> now');
  });

  it('rejects inconsistent data', () => {
    expect(() =>
      createTokenizer({ kind: 'sentencepiece', tokens: ['a', 'b'], scores: [0], special: { eos: [], addBos: false }, addSpacePrefix: true }),
    ).toThrow(InvalidTokenizerError);
  });
});
