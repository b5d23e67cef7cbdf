import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import type { SpecialTokens, StreamDecoder, TokenizerData } from '../types.js';
import type { CorollaTokenizer, StreamDecoderOptions } from './base.js';
import { InvalidTokenizerError } from './errors.js';

type HfData = Extract<TokenizerData, { kind: 'hf' }>;

/** How many trailing context ids (e.g. of the prompt) a stream decoder keeps to decode its first delta against. */
const STREAM_CONTEXT = 4;

/**
 * A Hugging Face tokenizer.json run by @huggingface/tokenizers. Encoding never lets the post-processor add
 * tokens; BOS is prepended here when asked, as for the other kinds. Decoding skips special tokens unless
 * `keepSpecial` and cleans up tokenization spaces only when tokenizer_config.json asks for it.
 */
export class HfTokenizer implements CorollaTokenizer {
  readonly kind = 'hf' as const;
  readonly vocabSize: number;
  readonly special: SpecialTokens;
  readonly chatTemplate?: string;

  private readonly tokenizer: HfLibTokenizer;
  private readonly cleanUpSpaces: boolean;

  constructor(data: HfData) {
    if (typeof data.tokenizerJson !== 'object' || data.tokenizerJson === null) {
      throw new InvalidTokenizerError('tokenizer.json', 'not a JSON object');
    }
    try {
      this.tokenizer = new HfLibTokenizer(data.tokenizerJson, data.tokenizerConfig ?? {});
    } catch (error) {
      throw new InvalidTokenizerError('tokenizer.json', (error as Error).message ?? String(error), { cause: error });
    }
    let maxId = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.special = data.special;
    this.chatTemplate =
      data.chatTemplate ?? (typeof data.tokenizerConfig?.chat_template === 'string' ? data.tokenizerConfig.chat_template : undefined);
    this.cleanUpSpaces = data.tokenizerConfig?.clean_up_tokenization_spaces === true;
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const ids = text.length === 0 ? [] : this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    const bos = this.special.bos;
    return (options.addBos ?? this.special.addBos) && bos !== undefined ? [bos, ...ids] : ids;
  }

  decode(ids: readonly number[], options: { keepSpecial?: boolean } = {}): string {
    const valid = ids.filter((id) => Number.isInteger(id) && id >= 0 && id < this.vocabSize);
    if (valid.length === 0) return '';
    return this.tokenizer.decode(valid, {
      skip_special_tokens: !(options.keepSpecial ?? false),
      clean_up_tokenization_spaces: this.cleanUpSpaces,
    });
  }

  /**
   * Deltas come from re-decoding a short window: the text of ids[prefix..] minus that of ids[prefix..read]
   * (the already emitted part), emitted only once it grew and does not end in U+FFFD (an incomplete
   * character). Decoders that strip or merge at the start of the window treat both texts alike.
   */
  streamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const keepSpecial = options.keepSpecial ?? false;
    const context = options.context ?? [];
    // ids[prefix..read] was emitted already (or is context); ids[read..] is pending.
    let ids = context.slice(Math.max(0, context.length - STREAM_CONTEXT));
    let prefix = 0;
    let read = ids.length;
    const delta = (final: boolean): string => {
      if (read === ids.length) return '';
      const before = this.decode(ids.slice(prefix, read), { keepSpecial });
      const after = this.decode(ids.slice(prefix), { keepSpecial });
      const grew = after.startsWith(before);
      if (!final && (after.length <= before.length || after.endsWith('\uFFFD'))) return '';
      const text = after.slice(grew ? before.length : commonPrefix(before, after));
      prefix = read;
      read = ids.length;
      if (prefix > 1024) {
        ids = ids.slice(prefix);
        read -= prefix;
        prefix = 0;
      }
      return text;
    };
    return {
      push: (id: number): string => {
        ids.push(id);
        return delta(false);
      },
      flush: (): string => delta(true),
    };
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id) ?? undefined;
  }
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
