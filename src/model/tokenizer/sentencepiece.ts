import type { SpecialTokens, TokenizerData } from '../types.js';
import { PieceTokenizer } from './base.js';
import { parseByteToken, utf8Encoder } from './bytes.js';
import { InvalidTokenizerError } from './errors.js';
import { Heap } from './heap.js';
import { SpecialSplitter } from './special.js';

type SentencePieceData = Extract<TokenizerData, { kind: 'sentencepiece' }>;

/** GGUF token types. */
export const TokenType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

const SPACE = '\u2581'; // ▁

interface Bigram {
  readonly left: number;
  readonly right: number;
  readonly score: number;
  /** Length of the merged text when the bigram was queued; stale entries no longer match. */
  readonly size: number;
}

const bigramBefore = (a: Bigram, b: Bigram): boolean =>
  a.score > b.score || (a.score === b.score && a.left < b.left);

/**
 * SentencePiece BPE as llama.cpp runs a GGUF "llama" vocabulary: spaces become "▁", a "▁" is prepended when
 * `addSpacePrefix` (again after each special token), then the highest-scoring adjacent pair that is a
 * vocabulary piece is merged until none is left; characters that end up outside the vocabulary are written as
 * "<0xHH>" byte tokens. Control, user-defined and unknown token strings in the text map to their ids.
 */
export class SentencePieceTokenizer extends PieceTokenizer {
  readonly kind = 'sentencepiece' as const;
  readonly vocabSize: number;
  readonly special: SpecialTokens;
  readonly chatTemplate?: string;

  private readonly tokens: readonly string[];
  private readonly scores: readonly number[];
  private readonly types: Uint8Array;
  private readonly addSpacePrefix: boolean;
  /** Pieces that BPE may produce: normal and user-defined tokens (first id wins on duplicates). */
  private readonly pieceToId = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly specials: SpecialSplitter;
  private readonly skipped: Uint8Array;

  constructor(data: SentencePieceData) {
    super();
    const n = data.tokens.length;
    if (n === 0) throw new InvalidTokenizerError('sentencepiece vocabulary', 'it has no tokens');
    if (data.scores.length !== n) {
      throw new InvalidTokenizerError('sentencepiece vocabulary', `${n} tokens but ${data.scores.length} scores`);
    }
    if (data.tokenTypes && data.tokenTypes.length !== n) {
      throw new InvalidTokenizerError('sentencepiece vocabulary', `${n} tokens but ${data.tokenTypes.length} token types`);
    }
    this.vocabSize = n;
    this.special = data.special;
    this.chatTemplate = data.chatTemplate;
    this.tokens = data.tokens;
    this.scores = data.scores;
    this.addSpacePrefix = data.addSpacePrefix;
    this.types = inferTokenTypes(data.tokens, data.special, data.tokenTypes);

    const specials: Array<{ text: string; id: number }> = [];
    this.skipped = new Uint8Array(n);
    for (let id = 0; id < n; id++) {
      const type = this.types[id]!;
      const text = data.tokens[id]!;
      if (type === TokenType.byte) {
        const byte = parseByteToken(text);
        if (byte !== undefined && this.byteIds[byte] === -1) this.byteIds[byte] = id;
      } else if (type === TokenType.normal || type === TokenType.userDefined) {
        if (!this.pieceToId.has(text)) this.pieceToId.set(text, id);
      }
      if (type === TokenType.control || type === TokenType.userDefined || type === TokenType.unknown) {
        specials.push({ text, id });
      }
      if (type === TokenType.control || type === TokenType.unknown || type === TokenType.unused) this.skipped[id] = 1;
    }
    for (const id of [data.special.bos, data.special.pad, ...data.special.eos]) {
      if (id !== undefined && id >= 0 && id < n && this.types[id] === TokenType.normal) this.skipped[id] = 1;
    }
    this.specials = new SpecialSplitter(specials);
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const out: number[] = [];
    const bos = this.special.bos;
    if ((options.addBos ?? this.special.addBos) && bos !== undefined) out.push(bos);
    let afterSpecial = true; // the first fragment gets the space prefix too
    for (const fragment of this.specials.split(text)) {
      if (typeof fragment === 'number') {
        out.push(fragment);
        afterSpecial = true;
        continue;
      }
      const prefixed = this.addSpacePrefix && afterSpecial ? ' ' + fragment : fragment;
      this.encodeFragment(prefixed.replaceAll(' ', SPACE), out);
      afterSpecial = false;
    }
    return out;
  }

  private encodeFragment(text: string, out: number[]): void {
    const sym = Array.from(text); // one symbol per code point
    const count = sym.length;
    if (count === 0) return;
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }
    const queue = new Heap<Bigram>(bigramBefore);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const merged = sym[left]! + sym[right]!;
      const id = this.pieceToId.get(merged);
      if (id === undefined) return;
      queue.push({ left, right, score: this.scores[id]!, size: merged.length });
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);

    for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
      const l = sym[bigram.left]!;
      const r = sym[bigram.right]!;
      if (l.length === 0 || r.length === 0 || l.length + r.length !== bigram.size) continue; // stale
      sym[bigram.left] = l + r;
      sym[bigram.right] = '';
      const after = next[bigram.right]!;
      next[bigram.left] = after;
      if (after >= 0) prev[after] = bigram.left;
      tryAdd(prev[bigram.left]!, bigram.left);
      tryAdd(bigram.left, after);
    }

    for (let i = 0; i !== -1; i = next[i]!) {
      const piece = sym[i]!;
      const id = this.pieceToId.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const byte of utf8Encoder.encode(piece)) {
        const byteId = this.byteIds[byte]!;
        if (byteId >= 0) out.push(byteId);
        else if (this.special.unk !== undefined) out.push(this.special.unk);
      }
    }
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  protected isSkipped(id: number): boolean {
    return this.skipped[id] === 1;
  }

  protected tokenBytes(id: number): Uint8Array {
    const text = this.tokens[id]!;
    const byte = this.types[id] === TokenType.byte ? parseByteToken(text) : undefined;
    return byte !== undefined ? Uint8Array.of(byte) : utf8Encoder.encode(text.replaceAll(SPACE, ' '));
  }

  // As llama.cpp and llama2.c do: the space that encode() prepended is dropped after BOS.
  protected override afterPrevious(bytes: Uint8Array, id: number, prev: number | undefined): Uint8Array {
    const strip = this.addSpacePrefix && prev !== undefined && prev === this.special.bos && this.types[id] !== TokenType.byte && bytes[0] === 0x20;
    return strip ? bytes.subarray(1) : bytes;
  }
}

/** Token types from the data, or inferred (byte tokens by their "<0xHH>" form, special ids as control). */
export function inferTokenTypes(
  tokens: readonly string[],
  special: SpecialTokens,
  given: readonly number[] | undefined,
): Uint8Array {
  const types = new Uint8Array(tokens.length);
  if (given) {
    for (let i = 0; i < tokens.length; i++) types[i] = given[i]!;
    return types;
  }
  for (let i = 0; i < tokens.length; i++) {
    types[i] = parseByteToken(tokens[i]!) !== undefined ? TokenType.byte : TokenType.normal;
  }
  for (const id of [special.bos, special.pad, ...special.eos]) {
    if (id !== undefined && id >= 0 && id < tokens.length) types[id] = TokenType.control;
  }
  if (special.unk !== undefined && special.unk >= 0 && special.unk < tokens.length) types[special.unk] = TokenType.unknown;
  return types;
}
