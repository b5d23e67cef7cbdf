/** Byte-level helpers shared by the tokenizers. */

export const utf8Encoder = new TextEncoder();

/** "<0xHH>" → the byte, or undefined when the piece is not a byte token. */
export function parseByteToken(piece: string): number | undefined {
  if (piece.length !== 6 || !piece.startsWith('<0x') || piece[5] !== '>') return undefined;
  const hex = piece.slice(3, 5);
  if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
  return parseInt(hex, 16);
}

export function byteTokenText(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/**
 * GPT-2's reversible byte → unicode map: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in order, so that every byte string becomes a string of visible characters.
 */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const isPrintable = new Set(printable);
  const map: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = isPrintable.has(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  }
  return map;
})();

/** The inverse of BYTE_TO_UNICODE, indexed by UTF-16 code unit (all mapped characters are below U+0200). */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));

/** Maps a string's UTF-8 bytes through BYTE_TO_UNICODE. */
export function toByteLevel(text: string): string {
  const bytes = utf8Encoder.encode(text);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_TO_UNICODE[bytes[i]!];
  return out;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export const EMPTY_BYTES = new Uint8Array(0);
