/**
 * The canonical byte encoding that signatures cover: deterministic JSON, prefixed by a signing domain, so a value
 * has exactly one signed spelling and a signature for one record kind never verifies as another.
 */
import type { SignedEnvelope } from './schema.js';

const encoder = new TextEncoder();

/**
 * Deterministic JSON: object keys sorted by UTF-16 code units, `undefined` members omitted, no whitespace.
 * Rejects values JSON cannot represent exactly (NaN, Infinity, functions, bigint…).
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(',')}]`;
      const entries = Object.keys(value as object)
        .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
        .sort()
        .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
      return `{${entries.join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode ${typeof value}`);
  }
}

/** The exact bytes a record's signature covers: `utf8(domain + "\n" + canonicalJson(record))`. */
export function signingBytes(domain: string, record: unknown): Uint8Array {
  return encoder.encode(`${domain}\n${canonicalJson(record)}`);
}

/** Canonical UTF-8 JSON bytes of an envelope (what goes into the DHT and over the wire). */
export function encodeEnvelope(envelope: SignedEnvelope<unknown>): Uint8Array {
  return encoder.encode(canonicalJson(envelope));
}

/** Decodes base64 only in its canonical spelling (so one signature or key has one text form); undefined otherwise. */
export function strictBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
