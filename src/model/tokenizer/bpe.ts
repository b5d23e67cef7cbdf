import type { SpecialTokens, TokenizerData } from '../types.js';
import { PieceTokenizer } from './base.js';
import { UNICODE_TO_BYTE, toByteLevel, utf8Encoder } from './bytes.js';
import { InvalidTokenizerError } from './errors.js';
import { Heap } from './heap.js';
import { IGNORE_MERGES_PRE_TOKENIZERS, preTokenizer } from './pretokenize.js';
import { TokenType, inferTokenTypes } from './sentencepiece.js';
import { SpecialSplitter } from './special.js';

type BpeData = Extract<TokenizerData, { kind: 'bpe' }>;

interface Bigram {
  readonly left: number;
  readonly right: number;
  readonly rank: number;
  readonly leftSize: number;
  readonly rightSize: number;
}

const bigramBefore = (a: Bigram, b: Bigram): boolean => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

const PAIR_SEPARATOR = '\u0000';
const WORD_CACHE_LIMIT = 65_536;

/**
 * Byte-level BPE (GGUF "gpt2", Hugging Face ByteLevel): control and user-defined token strings are split out
 * first and map to their ids; the rest is pre-tokenized by the named regexes, each piece's UTF-8 bytes are
 * mapped through GPT-2's byte → unicode table, and adjacent symbols are merged lowest merge rank first.
 */
export class BpeTokenizer extends PieceTokenizer {
  readonly kind = 'bpe' as const;
  readonly vocabSize: number;
  readonly special: SpecialTokens;
  readonly chatTemplate?: string;

  private readonly tokens: readonly string[];
  private readonly types: Uint8Array;
  private readonly tokenToId = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly specials: SpecialSplitter;
  private readonly split: (text: string) => string[];
  private readonly ignoreMerges: boolean;
  private readonly skipped: Uint8Array;
  private readonly cache = new Map<string, readonly number[]>();

  constructor(data: BpeData) {
    super();
    const n = data.tokens.length;
    if (n === 0) throw new InvalidTokenizerError('BPE vocabulary', 'it has no tokens');
    if (data.tokenTypes && data.tokenTypes.length !== n) {
      throw new InvalidTokenizerError('BPE vocabulary', `${n} tokens but ${data.tokenTypes.length} token types`);
    }
    this.vocabSize = n;
    this.special = data.special;
    this.chatTemplate = data.chatTemplate;
    this.tokens = data.tokens;
    this.split = preTokenizer(data.preTokenizer);
    this.ignoreMerges = IGNORE_MERGES_PRE_TOKENIZERS.has(data.preTokenizer ?? '');
    // Byte-level vocabularies have no "<0xHH>" byte tokens, so only the special ids get a non-normal type.
    this.types = data.tokenTypes
      ? inferTokenTypes(data.tokens, data.special, data.tokenTypes)
      : inferSpecialTypes(n, data.special);
    this.skipped = new Uint8Array(n);
    const specials: Array<{ text: string; id: number }> = [];
    for (let id = 0; id < n; id++) {
      const type = this.types[id]!;
      const text = data.tokens[id]!;
      if (!this.tokenToId.has(text)) this.tokenToId.set(text, id);
      if (type === TokenType.control || type === TokenType.userDefined) specials.push({ text, id });
      if (type === TokenType.control || type === TokenType.unknown || type === TokenType.unused) this.skipped[id] = 1;
    }
    for (const id of [data.special.bos, data.special.pad, ...data.special.eos]) {
      if (id !== undefined && id >= 0 && id < n) this.skipped[id] = 1;
    }
    this.specials = new SpecialSplitter(specials);
    data.merges.forEach((merge, rank) => {
      const cut = merge.indexOf(' ', 1);
      if (cut < 0) throw new InvalidTokenizerError('BPE merges', `merge ${rank} "${merge}" has no space`);
      const key = merge.slice(0, cut) + PAIR_SEPARATOR + merge.slice(cut + 1);
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const out: number[] = [];
    const bos = this.special.bos;
    if ((options.addBos ?? this.special.addBos) && bos !== undefined) out.push(bos);
    for (const fragment of this.specials.split(text)) {
      if (typeof fragment === 'number') {
        out.push(fragment);
        continue;
      }
      for (const word of this.split(fragment)) {
        let ids = this.cache.get(word);
        if (ids === undefined) {
          ids = this.encodeWord(toByteLevel(word));
          if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
          this.cache.set(word, ids);
        }
        for (const id of ids) out.push(id);
      }
    }
    return out;
  }

  private encodeWord(word: string): number[] {
    const whole = this.tokenToId.get(word);
    if (whole !== undefined && (word.length === 1 || this.ignoreMerges)) return [whole];
    // Byte-level strings hold only characters below U+0200, so one UTF-16 unit is one symbol.
    const count = word.length;
    const sym: string[] = new Array(count);
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      sym[i] = word[i]!;
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }
    const queue = new Heap<Bigram>(bigramBefore);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const rank = this.ranks.get(sym[left]! + PAIR_SEPARATOR + sym[right]!);
      if (rank === undefined) return;
      queue.push({ left, right, rank, leftSize: sym[left]!.length, rightSize: sym[right]!.length });
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
      const l = sym[bigram.left]!;
      const r = sym[bigram.right]!;
      // Symbols only grow, so a bigram is current while both sides keep their queued lengths.
      if (l.length !== bigram.leftSize || r.length !== bigram.rightSize || next[bigram.left] !== bigram.right) continue;
      sym[bigram.left] = l + r;
      sym[bigram.right] = '';
      const after = next[bigram.right]!;
      next[bigram.left] = after;
      if (after >= 0) prev[after] = bigram.left;
      tryAdd(prev[bigram.left]!, bigram.left);
      tryAdd(bigram.left, after);
    }
    const ids: number[] = [];
    for (let i = 0; i !== -1; i = next[i]!) {
      const piece = sym[i]!;
      const id = this.tokenToId.get(piece);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      for (const ch of piece) {
        const charId = this.tokenToId.get(ch) ?? this.special.unk;
        if (charId !== undefined) ids.push(charId);
      }
    }
    return ids;
  }

  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  protected isSkipped(id: number): boolean {
    return this.skipped[id] === 1;
  }

  protected tokenBytes(id: number): Uint8Array {
    const text = this.tokens[id]!;
    const type = this.types[id]!;
    if (type !== TokenType.normal && type !== TokenType.byte) return utf8Encoder.encode(text); // control, user-defined: plain text
    const out: number[] = [];
    for (const ch of text) {
      const byte = UNICODE_TO_BYTE.get(ch);
      if (byte !== undefined) out.push(byte);
      else for (const b of utf8Encoder.encode(ch)) out.push(b);
    }
    return Uint8Array.from(out);
  }
}

function inferSpecialTypes(n: number, special: SpecialTokens): Uint8Array {
  const types = new Uint8Array(n).fill(TokenType.normal);
  for (const id of [special.bos, special.pad, ...special.eos]) {
    if (id !== undefined && id >= 0 && id < n) types[id] = TokenType.control;
  }
  if (special.unk !== undefined && special.unk >= 0 && special.unk < n) types[special.unk] = TokenType.unknown;
  return types;
}
