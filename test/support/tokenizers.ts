/** Shared fixtures for the tokenizer tests: paths into ../shared/models and SmolLM2's tokenizer.json as data. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TokenizerData } from '../../../src/model/types.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const MODELS = resolve(root, '../shared/models');

export const TOK512 = resolve(MODELS, 'stories260K/tok512.bin');
export const STORIES_GGUF = resolve(MODELS, 'stories260K/stories260K.gguf');
export const LLAMA2_TOKENIZER_BIN = resolve(MODELS, 'llama2-tokenizer/tokenizer.bin');
export const SMOLLM2_TOKENIZER_JSON = resolve(MODELS, 'smollm2-135m-instruct-tokenizer/tokenizer.json');

interface TokenizerJson {
  added_tokens: Array<{ id: number; content: string; special: boolean }>;
  model: { type: string; vocab: Record<string, number>; merges: Array<string | [string, string]> };
}

let smolJson: TokenizerJson | undefined;
export function smolLmJson(): TokenizerJson {
  smolJson ??= JSON.parse(readFileSync(SMOLLM2_TOKENIZER_JSON, 'utf8')) as TokenizerJson;
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
  const json = smolLmJson();
  const size = Math.max(...Object.values(json.model.vocab), ...json.added_tokens.map((t) => t.id)) + 1;
  const tokens: string[] = new Array(size).fill('');
  const tokenTypes: number[] = new Array(size).fill(1);
  for (const [token, id] of Object.entries(json.model.vocab)) tokens[id] = token;
  for (const added of json.added_tokens) {
    tokens[added.id] = added.content;
    tokenTypes[added.id] = added.special ? 3 : 4;
  }
  const merges = json.model.merges.map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  return {
    kind: 'bpe',
    tokens,
    merges,
    tokenTypes,
    preTokenizer: 'smollm',
    special: { ...SMOLLM_SPECIAL, eos: [...SMOLLM_SPECIAL.eos] },
  };
}
