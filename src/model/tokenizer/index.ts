import type { TokenizerData } from '../types.js';
import type { CorollaTokenizer } from './base.js';
import { BpeTokenizer } from './bpe.js';
import { UnsupportedTokenizerError } from './errors.js';
import { HfTokenizer } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import { SentencePieceTokenizer } from './sentencepiece.js';

export type { CorollaTokenizer, StreamDecoderOptions } from './base.js';
export { BpeTokenizer } from './bpe.js';
export { HfTokenizer } from './hf.js';
export { Llama2cTokenizer, LLAMA2C_SPECIAL, parseLlama2cTokenizer, readLlama2cTokenizer } from './llama2c.js';
export { SentencePieceTokenizer, TokenType } from './sentencepiece.js';
export { preTokenizer, SUPPORTED_PRE_TOKENIZERS } from './pretokenize.js';
export { BYTE_TO_UNICODE, UNICODE_TO_BYTE } from './bytes.js';
export { applyChatTemplate, renderChat, CHATML_TEMPLATE, type ChatTemplateOptions } from './chat-template.js';
export { ChatTemplateError, InvalidTokenizerError, UnsupportedTokenizerError } from './errors.js';

/** Builds the tokenizer for any supported tokenizer description. */
export function createTokenizer(data: TokenizerData): CorollaTokenizer {
  switch (data.kind) {
    case 'sentencepiece':
      return new SentencePieceTokenizer(data);
    case 'llama2c':
      return new Llama2cTokenizer(data);
    case 'bpe':
      return new BpeTokenizer(data);
    case 'hf':
      return new HfTokenizer(data);
    default:
      throw new UnsupportedTokenizerError(
        `kind "${(data as { kind?: unknown }).kind}"`,
        ['sentencepiece', 'llama2c', 'bpe', 'hf'],
      );
  }
}
