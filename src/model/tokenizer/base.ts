import type { SpecialTokens, StreamDecoder, Tokenizer, TokenizerData } from '../types.js';
import { concatBytes, EMPTY_BYTES } from './bytes.js';

export interface StreamDecoderOptions {
  /**
   * Ids that precede the stream (typically the prompt). They are not emitted; they give the decoder its
   * context, e.g. whether the first streamed piece directly follows BOS.
   */
  readonly context?: readonly number[];
  /** Emit control/special tokens too (default false, as in `decode`). */
  readonly keepSpecial?: boolean;
}

/** A `Tokenizer` as built here: the contract plus the kind and stream-decoder options. */
export interface CorollaTokenizer extends Tokenizer {
  readonly kind: TokenizerData['kind'];
  streamDecoder(options?: StreamDecoderOptions): StreamDecoder;
}

/**
 * Base of the tokenizers whose tokens are byte strings (SentencePiece, llama2.c, byte-level BPE). Decoding
 * concatenates each token's bytes and decodes UTF-8 once, so a character split over several byte tokens
 * comes out whole; the stream decoder does the same incrementally with a streaming TextDecoder.
 */
export abstract class PieceTokenizer implements CorollaTokenizer {
  abstract readonly kind: TokenizerData['kind'];
  abstract readonly vocabSize: number;
  abstract readonly special: SpecialTokens;
  abstract readonly chatTemplate?: string;

  abstract encode(text: string, options?: { addBos?: boolean }): number[];
  abstract idToToken(id: number): string | undefined;

  /** A token's bytes as stored (an id inside the vocabulary); computed once per id and cached. */
  protected abstract tokenBytes(id: number): Uint8Array;
  /** Special/control tokens that decode to nothing unless `keepSpecial`. */
  protected abstract isSkipped(id: number): boolean;
  /** Adjusts a token's bytes for the token before it (the space after BOS); unchanged by default. */
  protected afterPrevious(bytes: Uint8Array, _id: number, _prev: number | undefined): Uint8Array {
    return bytes;
  }

  private readonly byteCache: (Uint8Array | undefined)[] = [];

  /**
   * The bytes that token `id` contributes to decoded text, given the token before it (undefined at the start).
   * Special tokens give no bytes unless `keepSpecial`; ids outside the vocabulary give no bytes.
   */
  protected pieceBytes(id: number, prev: number | undefined, keepSpecial: boolean): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return EMPTY_BYTES;
    if (!keepSpecial && this.isSkipped(id)) return EMPTY_BYTES;
    const bytes = (this.byteCache[id] ??= this.tokenBytes(id));
    return this.afterPrevious(bytes, id, prev);
  }

  decode(ids: readonly number[], options: { keepSpecial?: boolean } = {}): string {
    const keep = options.keepSpecial ?? false;
    const parts: Uint8Array[] = [];
    let prev: number | undefined;
    for (const id of ids) {
      parts.push(this.pieceBytes(id, prev, keep));
      prev = id;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(concatBytes(parts));
  }

  streamDecoder(options: StreamDecoderOptions = {}): StreamDecoder {
    const keep = options.keepSpecial ?? false;
    const context = options.context ?? [];
    let prev: number | undefined = context.length > 0 ? context[context.length - 1] : undefined;
    let decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push: (id: number): string => {
        const bytes = this.pieceBytes(id, prev, keep);
        prev = id;
        return bytes.length === 0 ? '' : decoder.decode(bytes, { stream: true });
      },
      flush: (): string => {
        const rest = decoder.decode();
        decoder = new TextDecoder('utf-8', { ignoreBOM: true });
        return rest;
      },
    };
  }
}
