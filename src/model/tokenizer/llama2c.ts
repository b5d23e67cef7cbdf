import { readFileSync } from 'node:fs';
import { ModelNotFoundError } from '../errors.js';
import type { SpecialTokens, TokenizerData } from '../types.js';
import { PieceTokenizer } from './base.js';
import { parseByteToken, utf8Encoder } from './bytes.js';
import { InvalidTokenizerError } from './errors.js';
import { Heap } from './heap.js';
import { SpecialSplitter } from './special.js';

type Llama2cData = Extract<TokenizerData, { kind: 'llama2c' }>;

/** llama2.c's fixed special ids: <unk>, <s>, </s>. Bytes 0x00..0xFF follow at 3..258. */
export const LLAMA2C_SPECIAL: SpecialTokens = { unk: 0, bos: 1, eos: [2], addBos: true };

/** Largest max_token_length accepted from a file. */
const MAX_TOKEN_LENGTH = 65536;

export interface Llama2cTokenizerReadOptions {
  /** Read exactly this many tokens; default: until EOF. */
  readonly vocabSize?: number;
  /** With vocabSize: bytes left after the last token are an error (the file belongs to another vocabulary). */
  readonly exact?: boolean;
}

/**
 * Parses a llama2.c tokenizer.bin: int32 max_token_length, then per token f32 score, int32 length, bytes.
 * The file does not store the vocabulary size: tokens are read until EOF, or exactly `vocabSize` of them.
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, options: Llama2cTokenizerReadOptions | number = {}, location = 'tokenizer.bin'): Llama2cData {
  const { vocabSize, exact } = typeof options === 'number' ? { vocabSize: options, exact: false } : options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 4) throw new InvalidTokenizerError(location, 'shorter than its 4-byte header');
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > MAX_TOKEN_LENGTH) throw new InvalidTokenizerError(location, `max_token_length is ${maxTokenLength}`);
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const tokens: string[] = [];
  const scores: number[] = [];
  let offset = 4;
  while (vocabSize === undefined ? offset < bytes.byteLength : tokens.length < vocabSize) {
    if (offset + 8 > bytes.byteLength) {
      throw new InvalidTokenizerError(location, `truncated at token ${tokens.length} (offset ${offset})`);
    }
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    offset += 8;
    if (length < 0 || length > maxTokenLength || offset + length > bytes.byteLength) {
      throw new InvalidTokenizerError(location, `token ${tokens.length} has length ${length} (max_token_length ${maxTokenLength}, ${bytes.byteLength - offset} bytes left)`);
    }
    tokens.push(decoder.decode(bytes.subarray(offset, offset + length)));
    scores.push(score);
    offset += length;
  }
  if (tokens.length < 3) throw new InvalidTokenizerError(location, `only ${tokens.length} tokens`);
  if (exact && offset !== bytes.byteLength) {
    throw new InvalidTokenizerError(location, `${bytes.byteLength - offset} bytes left after ${tokens.length} tokens (tokenizer for another vocabulary size?)`);
  }
  return { kind: 'llama2c', tokens, scores, maxTokenLength, special: LLAMA2C_SPECIAL };
}

/** Reads a llama2.c tokenizer.bin from disk (see `parseLlama2cTokenizer`). */
export function readLlama2cTokenizer(path: string, options?: Llama2cTokenizerReadOptions | number): Llama2cData {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelNotFoundError(path, { cause: error });
    throw new InvalidTokenizerError(path, 'cannot be read', { cause: error });
  }
  return parseLlama2cTokenizer(bytes, options, path);
}

interface Pair {
  readonly left: number;
  readonly right: number;
  readonly id: number;
  readonly score: number;
  readonly leftVersion: number;
  readonly rightVersion: number;
}

const pairBefore = (a: Pair, b: Pair): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

/**
 * Encodes exactly as llama2.c's run.c `encode`: a dummy-prefix " " token, then one token per UTF-8 character
 * (or its bytes as ids byte + 3 when the character is not a piece), then repeatedly the best-scoring adjacent
 * pair whose concatenation is a piece is merged (leftmost on ties). The same merges run.c finds by rescanning
 * are found here with a priority queue. Additionally, as the `Tokenizer` contract asks, "<unk>", "<s>" and
 * "</s>" in the text become their ids, and the dummy prefix is repeated after each of them.
 *
 * Decoding follows run.c too: after BOS a piece's leading space is dropped, "<0xHH>" pieces are raw bytes.
 */
export class Llama2cTokenizer extends PieceTokenizer {
  readonly kind = 'llama2c' as const;
  readonly vocabSize: number;
  readonly special: SpecialTokens;
  readonly chatTemplate?: string = undefined;

  private readonly pieces: readonly string[];
  private readonly scores: readonly number[];
  private readonly lookup = new Map<string, number>();
  private readonly byteIds = new Int32Array(256);
  private readonly isByte: Uint8Array;
  private readonly specialText = new Map<number, string>();
  private readonly specials: SpecialSplitter;
  private readonly dummyPrefix: number | undefined;

  constructor(data: Llama2cData) {
    super();
    const n = data.tokens.length;
    if (n === 0) throw new InvalidTokenizerError('llama2.c tokenizer', 'it has no tokens');
    if (data.scores.length !== n) {
      throw new InvalidTokenizerError('llama2.c tokenizer', `${n} tokens but ${data.scores.length} scores`);
    }
    this.vocabSize = n;
    this.special = data.special;
    this.pieces = data.tokens;
    this.scores = data.scores;
    this.isByte = new Uint8Array(n);
    for (let b = 0; b < 256; b++) this.byteIds[b] = b + 3;
    for (let id = 0; id < n; id++) {
      const piece = data.tokens[id]!;
      if (!this.lookup.has(piece)) this.lookup.set(piece, id);
      const byte = parseByteToken(piece);
      if (byte !== undefined) {
        this.isByte[id] = 1;
        this.byteIds[byte] = id;
      }
    }
    // run.c's layout fixes <unk> at id 0 even when the data names no unk id.
    const unk = data.special.unk ?? (data.tokens[0] === '<unk>' ? 0 : undefined);
    for (const id of [unk, data.special.bos, ...data.special.eos]) {
      // llama2.c stores BOS/EOS as "\n<s>\n" and "\n</s>\n"; their text form is the trimmed piece.
      if (id !== undefined && id >= 0 && id < n) this.specialText.set(id, data.tokens[id]!.trim());
    }
    this.specials = new SpecialSplitter([...this.specialText].map(([id, text]) => ({ id, text })));
    this.dummyPrefix = this.lookup.get(' ');
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const out: number[] = [];
    const bos = this.special.bos;
    if ((options.addBos ?? this.special.addBos) && bos !== undefined) out.push(bos);
    let afterSpecial = true;
    for (const fragment of this.specials.split(text)) {
      if (typeof fragment === 'number') {
        out.push(fragment);
        afterSpecial = true;
        continue;
      }
      const ids: number[] = [];
      if (afterSpecial && this.dummyPrefix !== undefined) ids.push(this.dummyPrefix);
      for (const ch of fragment) {
        const id = this.lookup.get(ch);
        if (id !== undefined) ids.push(id);
        else for (const byte of utf8Encoder.encode(ch)) ids.push(this.byteIds[byte]!);
      }
      this.merge(ids, out);
      afterSpecial = false;
    }
    return out;
  }

  private merge(ids: number[], out: number[]): void {
    const count = ids.length;
    const next = new Int32Array(count);
    const prev = new Int32Array(count);
    const version = new Int32Array(count);
    const alive = new Uint8Array(count).fill(1);
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }
    const queue = new Heap<Pair>(pairBefore);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const id = this.lookup.get(this.pieces[ids[left]!]! + this.pieces[ids[right]!]!);
      if (id === undefined) return;
      const score = this.scores[id]!;
      if (!(score > -1e10)) return; // run.c's best_score starts at -1e10
      queue.push({ left, right, id, score, leftVersion: version[left]!, rightVersion: version[right]! });
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    for (let pair = queue.pop(); pair !== undefined; pair = queue.pop()) {
      const { left, right } = pair;
      if (!alive[left] || !alive[right] || next[left] !== right) continue;
      if (version[left] !== pair.leftVersion || version[right] !== pair.rightVersion) continue;
      ids[left] = pair.id;
      version[left]!++;
      alive[right] = 0;
      const after = next[right]!;
      next[left] = after;
      if (after >= 0) prev[after] = left;
      tryAdd(prev[left]!, left);
      tryAdd(left, after);
    }
    if (count > 0) for (let i = 0; i !== -1; i = next[i]!) out.push(ids[i]!);
  }

  idToToken(id: number): string | undefined {
    return this.pieces[id];
  }

  protected isSkipped(id: number): boolean {
    return this.specialText.has(id);
  }

  protected tokenBytes(id: number): Uint8Array {
    const specialText = this.specialText.get(id);
    if (specialText !== undefined) return utf8Encoder.encode(specialText);
    const piece = this.pieces[id]!;
    return this.isByte[id] ? Uint8Array.of(parseByteToken(piece)!) : utf8Encoder.encode(piece);
  }

  // As run.c does: a piece's leading space is dropped right after BOS.
  protected override afterPrevious(bytes: Uint8Array, id: number, prev: number | undefined): Uint8Array {
    return prev !== undefined && prev === this.special.bos && !this.isByte[id] && bytes[0] === 0x20 ? bytes.subarray(1) : bytes;
  }
}
