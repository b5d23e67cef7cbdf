// Llama 3 and Qwen2 tokenizers against the ids Hugging Face's tokenizers give (llama.cpp's tokenizer test texts).
import { describe, expect, it } from 'vitest';
import { createTokenizer } from '../../../src/model/tokenizer/index.js';
import { referenceBpeData, referenceHfData, referenceIds, type ReferenceVocab } from '../../fixtures/tokenizers.js';

const VOCABS: ReferenceVocab[] = ['llama-3', 'qwen2'];

describe.each(VOCABS)('%s tokenizer against the reference ids', (vocab) => {
  const cases = referenceIds(vocab);

  it('has the reference cases', () => {
    expect(cases.length).toBeGreaterThan(40);
  });

  it.each([
    ['tokenizer.json (hf kind)', () => createTokenizer(referenceHfData(vocab))],
    ['GGUF-style vocabulary and merges (bpe kind)', () => createTokenizer(referenceBpeData(vocab))],
  ])('%s encodes every text to the reference ids and decodes them back', (_label, build) => {
    const tokenizer = build();
    const mismatches = cases
      .map(({ text, ids }) => ({ text, expected: ids, actual: tokenizer.encode(text, { addBos: false }) }))
      .filter(({ expected, actual }) => expected.join(' ') !== actual.join(' '));
    expect(mismatches).toEqual([]);
    for (const { text, ids } of cases) expect(tokenizer.decode(ids)).toBe(text);
  });
});
