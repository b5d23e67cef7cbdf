/** Tokenizer test data: SmolLM2's tokenizer.json as each tokenizer kind carries it, and texts with reference ids. */
import { readFileSync } from 'node:fs';
import type { TokenizerData } from '../../src/model/types.js';
import { SMOLLM_TOKENIZER_JSON } from './models.js';

export interface TokenizerJson {
  added_tokens: Array<{ id: number; content: string; special: boolean }>;
  model: { type: string; vocab: Record<string, number>; merges: Array<string | [string, string]> };
}

let smolJson: TokenizerJson | undefined;
export function smolLmJson(): TokenizerJson {
  smolJson ??= JSON.parse(readFileSync(SMOLLM_TOKENIZER_JSON, 'utf8')) as TokenizerJson;
  return smolJson;
}

/** SmolLM2's special ids: <|im_start|> 1 and <|im_end|> 2 (config.json bos/eos), <|endoftext|> 0. */
export const SMOLLM_SPECIAL = { bos: 1, eos: [2, 0], pad: 2, addBos: false } as const;

export function smolLmHfData(): Extract<TokenizerData, { kind: 'hf' }> {
  return { kind: 'hf', tokenizerJson: smolLmJson(), special: { ...SMOLLM_SPECIAL, eos: [...SMOLLM_SPECIAL.eos] } };
}

/**
 * The same vocabulary as a GGUF "gpt2" tokenizer would carry it (as llama.cpp's converter writes it): tokens by
 * id, merges as "a b" strings, added special tokens typed control (3), other added tokens user-defined (4).
 */
export function smolLmBpeData(): Extract<TokenizerData, { kind: 'bpe' }> {
  return ggufBpeData(smolLmJson(), 'smollm', { ...SMOLLM_SPECIAL, eos: [...SMOLLM_SPECIAL.eos] });
}

/**
 * A tokenizer.json's BPE vocabulary as llama.cpp's converter writes it into a GGUF: tokens by id, merges as "a b"
 * strings, added special tokens typed control (3), other added tokens user-defined (4).
 */
export function ggufBpeData(json: TokenizerJson, preTokenizer: string, special: TokenizerData['special']): Extract<TokenizerData, { kind: 'bpe' }> {
  let size = 0;
  for (const id of [...Object.values(json.model.vocab), ...json.added_tokens.map((t) => t.id)]) size = Math.max(size, id + 1);
  const tokens: string[] = new Array(size).fill('');
  const tokenTypes: number[] = new Array(size).fill(1);
  for (const [token, id] of Object.entries(json.model.vocab)) tokens[id] = token;
  for (const added of json.added_tokens) {
    tokens[added.id] = added.content;
    tokenTypes[added.id] = added.special ? 3 : 4;
  }
  const merges = json.model.merges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  return { kind: 'bpe', tokens, merges, tokenTypes, preTokenizer, special };
}

export const ROUND_TRIP_TEXTS: readonly string[] = [
  'Once upon a time',
  'Hello world',
  '  two leading spaces',
  'trailing spaces   ',
  ' single leading and trailing ',
  'multiple     internal      spaces',
  'line one\nline two\n\n\ttabbed\r\n',
  'naïve café résumé — “quotes” …',
  '日本語のテキスト',
  'Привет, мир!',
  'emoji 🎉🦙 test',
  'family 👨‍👩‍👧‍👦 flag 🇫🇷',
  '12345 + 678 = 13023',
  'x = [1, 2, 3]\n\tprint(x)\n',
  ' ',
];

/**
 * Llama 2 ids for texts encoded without BOS, as the SentencePiece library (0.1.97) gives them for
 * llama2-tokenizer/tokenizer.model.
 */
export const LLAMA2_REFERENCE: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['Hello world', [15043, 3186]],
  ['Hello, world!', [15043, 29892, 3186, 29991]],
  ['  leading and trailing  ', [259, 8236, 322, 25053, 259]],
  ['The quick brown fox jumps over the lazy dog.', [450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889]],
  ['日本語のテキスト', [29871, 30325, 30346, 30968, 30199, 30572, 30454, 30255, 30279]],
  ['emoji 🎉🦙 test', [953, 29877, 2397, 29871, 243, 162, 145, 140, 243, 162, 169, 156, 1243]],
  ['naïve café', [1055, 30085, 345, 274, 28059]],
  ['x = [1, 2, 3]\n\tprint(x)\n', [921, 353, 518, 29896, 29892, 29871, 29906, 29892, 29871, 29941, 29962, 13, 12, 2158, 29898, 29916, 29897, 13]],
];
