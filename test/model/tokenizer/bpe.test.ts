// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { describe, expect, it } from 'vitest';
import {
  BpeTokenizer,
  createTokenizer,
  HfTokenizer,
  InvalidTokenizerError,
  UnsupportedTokenizerError,
} from '../../../src/model/tokenizer/index.js';
import { preTokenizer } from '../../../src/model/tokenizer/pretokenize.js';
import { ROUND_TRIP_TEXTS, smolLmBpeData, smolLmHfData } from '../../support/tokenizers.js';

/** Varied text: code, numbers, unicode, whitespace runs, contractions, special tokens. */
const CORPUS: readonly string[] = [
  ...ROUND_TRIP_TEXTS,
  "Hello, world! I'm here; you're there, we've done it, they'll go, he'd say, it's fine.",
  "DON'T SHOUT, I'LL GO — 'S 'RE 'VE",
  'The year 2024 had 365 days and 1,234,567.89 dollars; 3.14159e-10.',
  'function add(a, b) {\n  return a + b;\n}\n\nconst x = add(1, 2); // 3\n',
  'def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n    else:\n        return -x\n',
  '\n\n\nnewlines\r\n\r\nwindows',
  '日本語のテキストと中文文本, 한국어',
  'Ελληνικά και русский текст',
  'mixed\u00a0nbsp\u3000ideographic space\u2028line separator',
  '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
  'text<|endoftext|>more<repo_name>x<file_sep>y',
  'a<|im_start|>b <|im_end|> c',
  '<|im_start almost special',
  'https://example.com/path?q=1&r=2#frag',
  'x'.repeat(300),
  '$100.00 & 50% off!!! @user #tag',
  '\t\t\ttabs\tand\tspaces  \t mixed',
  'a  b   c    d     ',
  '0123456789',
  '',
];

describe('SmolLM2 byte-level BPE: ours against the Hugging Face tokenizers library', () => {
  const hf = createTokenizer(smolLmHfData());
  const ours = createTokenizer(smolLmBpeData());

  it('builds both kinds', () => {
    expect(hf).toBeInstanceOf(HfTokenizer);
    expect(ours).toBeInstanceOf(BpeTokenizer);
    expect(hf.vocabSize).toBe(49152);
    expect(ours.vocabSize).toBe(49152);
  });

  it('gives the hard-coded ids the HF library gives', () => {
    // Computed once with @huggingface/tokenizers 0.2.0 on SmolLM2's tokenizer.json.
    const expected: Array<[string, number[]]> = [
      ['Hello world', [19556, 905]],
      ['<|im_start|>user\nWhat is 2+2?<|im_end|>\n', [1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198]],
      ["I'm 🦙 café", [57, 5248, 15107, 116, 243, 37366]],
    ];
    for (const [text, ids] of expected) {
      expect(hf.encode(text), text).toEqual(ids);
      expect(ours.encode(text), text).toEqual(ids);
    }
  });

  it('gives identical ids on a varied corpus', () => {
    for (const text of CORPUS) {
      expect(ours.encode(text), JSON.stringify(text)).toEqual(hf.encode(text));
    }
  });

  it('round trips, and decodes as the HF library does', () => {
    for (const text of CORPUS) {
      const ids = ours.encode(text);
      expect(ours.decode(ids, { keepSpecial: true }), JSON.stringify(text)).toBe(text);
      expect(hf.decode(ids, { keepSpecial: true }), JSON.stringify(text)).toBe(text);
      expect(ours.decode(ids), JSON.stringify(text)).toBe(hf.decode(ids));
    }
  });

  it('skips control tokens in decode unless keepSpecial', () => {
    const ids = ours.encode('<|im_start|>user\nHi<|im_end|>');
    expect(ours.decode(ids)).toBe('user\nHi');
    expect(ours.decode(ids, { keepSpecial: true })).toBe('<|im_start|>user\nHi<|im_end|>');
    expect(ours.idToToken(1)).toBe('<|im_start|>');
  });

  it('prepends BOS only when asked', () => {
    expect(ours.encode('Hello world', { addBos: true })).toEqual([1, 19556, 905]);
    expect(hf.encode('Hello world', { addBos: true })).toEqual([1, 19556, 905]);
  });

  it('encodes 10k characters in well under 2 s', () => {
    const fresh = createTokenizer(smolLmBpeData()); // cold word cache
    const text = CORPUS.join(' ').repeat(20).slice(0, 10_000);
    const word = Array.from({ length: 10_000 }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('');
    for (const input of [text, word]) {
      const start = performance.now();
      const ids = fresh.encode(input);
      expect(performance.now() - start).toBeLessThan(2000); // ~100 ms here; 2 s holds on a loaded 2-core machine
      expect(fresh.decode(ids, { keepSpecial: true })).toBe(input);
    }
  });
});

describe('pre-tokenizers (llama.cpp regexes)', () => {
  it('smollm isolates every digit, like HF Digits(individual_digits)', () => {
    expect(preTokenizer('smollm')('abc 2024 x')).toEqual(['abc', ' ', '2', '0', '2', '4', ' x']);
    // Any Unicode number counts, as in Rust's char::is_numeric and llama.cpp's \p{N}.
    expect(preTokenizer('smollm')('x²')).toEqual(['x', '²']);
  });

  it('gpt2 splits contractions and keeps a space with the next word', () => {
    expect(preTokenizer('gpt2')("I'm  here 123")).toEqual(['I', "'m", ' ', ' here', ' 123']);
  });

  it('llama3 groups up to three digits and matches contractions case-insensitively', () => {
    expect(preTokenizer('llama-bpe')("WE'LL pay 1234567 now!\n\n")).toEqual([
      'WE',
      "'LL",
      ' pay',
      ' ',
      '123',
      '456',
      '7',
      ' now',
      '!\n\n',
    ]);
  });

  it('qwen2 isolates single digits', () => {
    expect(preTokenizer('qwen2')('v12 ok')).toEqual(['v', '1', '2', ' ok']);
  });

  it('default applies llama.cpp\'s four expressions in turn', () => {
    expect(preTokenizer(undefined)('a+b=12345')).toEqual(['a', '+', 'b', '=', '123', '45']);
  });

  it('rejects an unknown pre-tokenizer by name', () => {
    const data = { ...smolLmBpeData(), preTokenizer: 'no-such-pre' };
    expect(() => createTokenizer(data)).toThrow(UnsupportedTokenizerError);
  });

  it('rejects a malformed merge', () => {
    expect(() =>
      createTokenizer({ kind: 'bpe', tokens: ['a', 'b'], merges: ['ab'], special: { eos: [], addBos: false } }),
    ).toThrow(InvalidTokenizerError);
  });
});
