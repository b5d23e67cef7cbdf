import { UnsupportedTokenizerError } from './errors.js';

/**
 * Pre-tokenizer regexes for byte-level BPE, keyed by GGUF `tokenizer.ggml.pre`, with the same expressions
 * llama.cpp applies (`llm_tokenizer_bpe`). Expressions are applied in order: each one splits every current
 * piece into its matches and the text between them (both kept), like Hugging Face's "Isolated" splits.
 *
 * `\s` is taken as Unicode White_Space (as Oniguruma in the Rust tokenizers and llama.cpp do), not as
 * JavaScript's `\s`, which differs on U+0085 and U+FEFF.
 */
const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
/** Llama 3's, with the case-insensitive contractions written out (JavaScript has no inline (?i:)). */
const LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const PRE_TOKENIZERS: Record<string, readonly string[]> = {
  default: ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
  gpt2: [GPT2],
  'gpt-2': [GPT2],
  mpt: [GPT2],
  olmo: [GPT2],
  jais: [GPT2],
  'llama-bpe': [LLAMA3],
  llama3: [LLAMA3],
  dbrx: [LLAMA3],
  'smaug-bpe': [LLAMA3],
  smollm: ['\\p{N}', GPT2],
  starcoder: ['\\p{N}', GPT2],
  refact: ['\\p{N}', GPT2],
  'command-r': ['\\p{N}', GPT2],
  codeshell: ['\\p{N}', GPT2],
  exaone: ['\\p{N}', GPT2],
  'minerva-7b': ['\\p{N}', GPT2],
  qwen2: [QWEN2],
  stablelm2: [QWEN2],
};

export const SUPPORTED_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_TOKENIZERS);

/**
 * Pre-tokenizers whose vocabularies take a piece found whole in the vocabulary as one token before any merge
 * (Hugging Face BPE `ignore_merges`, set by Llama 3's tokenizer.json; llama.cpp does the same for these names).
 */
export const IGNORE_MERGES_PRE_TOKENIZERS: ReadonlySet<string> = new Set(['llama-bpe', 'llama3']);

function compile(source: string): RegExp {
  const unicodeSpace = source.replace(/\\s/g, '\\p{White_Space}').replace(/\\S/g, '\\P{White_Space}');
  return new RegExp(unicodeSpace, 'gu');
}

/** Returns a function splitting text into pre-tokens for the named pre-tokenizer ("default" when undefined). */
export function preTokenizer(name: string | undefined): (text: string) => string[] {
  const sources = PRE_TOKENIZERS[name ?? 'default'];
  if (!sources) throw new UnsupportedTokenizerError(`pre-tokenizer "${name}"`, SUPPORTED_PRE_TOKENIZERS);
  const regexes = sources.map(compile);
  return (text: string): string[] => {
    let pieces = [text];
    for (const regex of regexes) {
      const split: string[] = [];
      for (const piece of pieces) {
        let last = 0;
        for (const match of piece.matchAll(regex)) {
          const start = match.index;
          if (start > last) split.push(piece.slice(last, start));
          if (match[0].length > 0) split.push(match[0]);
          last = start + match[0].length;
        }
        if (last < piece.length) split.push(piece.slice(last));
      }
      pieces = split;
    }
    return pieces;
  };
}
