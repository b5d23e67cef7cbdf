/**
 * Verification of signed envelopes read from the DHT or a peer. A reader never trusts `record.peerId`: it derives
 * the peer id from `publicKey` and requires equality. Every check returns a reason instead of throwing, so readers
 * can skip bad records and log why.
 */
import { publicKeyFromProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import type { PublicKey } from '@libp2p/interface';
import { checkSchema, type SchemaResult } from '../../wire/schema.js';
import { signingBytes, strictBase64 } from './canonical.js';
import {
  DEFAULT_CLOCK_SKEW_MS,
  LOAD_REPORT_DOMAIN,
  MAX_ENVELOPE_BYTES,
  MAX_RECORD_TTL_MS,
  SERVER_RECORD_DOMAIN,
  envelopeSchema,
  parseLoadReport,
  parseServerRecord,
  type LoadReport,
  type ServerRecord,
  type SignedEnvelope,
  type Verified,
} from './schema.js';

export type VerifyResult<T> = ({ ok: true } & Verified<T>) | { ok: false; reason: string; peerId?: string };

export interface VerifyOptions {
  /** The time to check against (ms); defaults to Date.now(). */
  now?: number;
  /** Clock skew tolerated for expiry and issue time (default 30 s). */
  clockSkewMs?: number;
  /** Longest allowed `expiresAt - issuedAt` (default 1 h). */
  maxTtlMs?: number;
  /** When known, the record must be for this model. */
  modelId?: string;
  /** When known, the record must be signed by this peer. */
  peerId?: string;
  /** When known, the record's numBlocks must equal this. */
  numBlocks?: number;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function parseEnvelope(input: unknown): { envelope: SignedEnvelope<unknown> } | { reason: string } {
  let value = input;
  if (input instanceof Uint8Array) {
    if (input.byteLength > MAX_ENVELOPE_BYTES) return { reason: `envelope is ${input.byteLength} bytes (limit ${MAX_ENVELOPE_BYTES})` };
    try {
      value = JSON.parse(decoder.decode(input));
    } catch {
      return { reason: 'malformed envelope: not UTF-8 JSON' };
    }
  }
  const result = checkSchema(envelopeSchema, value);
  return result.ok ? { envelope: result.value as SignedEnvelope<unknown> } : { reason: `malformed envelope: ${result.reason}` };
}

async function verifyEnvelope<T extends { peerId: string; modelId: string; issuedAt: number; expiresAt: number }>(
  domain: string,
  input: unknown,
  parse: (record: unknown) => SchemaResult<T>,
  options: VerifyOptions,
): Promise<VerifyResult<T>> {
  const parsedEnvelope = parseEnvelope(input);
  if (!('envelope' in parsedEnvelope)) return { ok: false, reason: parsedEnvelope.reason };
  const envelope = parsedEnvelope.envelope;
  const raw = envelope.record as { peerId?: unknown } | null;
  const claimedPeer = typeof raw === 'object' && raw !== null && typeof raw.peerId === 'string' ? raw.peerId.slice(0, 128) : undefined;
  const fail = (reason: string): VerifyResult<T> => ({ ok: false, reason, peerId: claimedPeer });

  const parsed = parse(envelope.record);
  if (!parsed.ok) return fail(`invalid record: ${parsed.reason}`);
  const record = parsed.value;
  // The signature covers the record as received, unknown fields included; bound its size for object inputs too.
  let signed: Uint8Array;
  try {
    signed = signingBytes(domain, envelope.record);
  } catch {
    return fail('invalid record: not plain JSON');
  }
  if (signed.byteLength > MAX_ENVELOPE_BYTES) return fail(`invalid record: ${signed.byteLength} bytes (limit ${MAX_ENVELOPE_BYTES})`);

  // Identity: the key must be an Ed25519 key whose peer id is the record's peerId.
  const keyBytes = strictBase64(envelope.publicKey);
  if (!keyBytes) return fail('publicKey is not base64');
  let publicKey: PublicKey;
  try {
    publicKey = publicKeyFromProtobuf(keyBytes);
  } catch {
    return fail('publicKey is not a valid libp2p public key');
  }
  if (publicKey.type !== 'Ed25519') return fail(`publicKey type ${publicKey.type} is not Ed25519`);
  const derived = peerIdFromPublicKey(publicKey).toString();
  if (derived !== record.peerId) return fail(`publicKey belongs to ${derived}, not to the claimed peerId`);
  if (options.peerId !== undefined && record.peerId !== options.peerId) return fail(`record is from ${record.peerId}, expected ${options.peerId}`);
  if (options.modelId !== undefined && record.modelId !== options.modelId) return fail(`record is for model ${record.modelId}, expected ${options.modelId}`);

  // Signature over the canonical encoding.
  const signature = strictBase64(envelope.signature);
  if (!signature || signature.byteLength !== 64) return fail('signature is not a base64 Ed25519 signature');
  let good = false;
  try {
    good = await publicKey.verify(signed, signature);
  } catch {
    good = false;
  }
  if (!good) return fail('bad signature');

  // Freshness.
  const now = options.now ?? Date.now();
  const skew = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  const maxTtl = options.maxTtlMs ?? MAX_RECORD_TTL_MS;
  if (record.expiresAt - record.issuedAt > maxTtl) return fail(`ttl ${record.expiresAt - record.issuedAt} ms exceeds ${maxTtl} ms`);
  if (now > record.expiresAt + skew) return fail(`expired ${now - record.expiresAt} ms ago`);
  if (record.issuedAt > now + skew) return fail(`issued ${record.issuedAt - now} ms in the future`);

  return { ok: true, record, envelope: envelope as SignedEnvelope<T> };
}

/**
 * Verifies a server record envelope given as encoded bytes or an already-parsed object: structure, Ed25519 key,
 * peer id derivation, signature, freshness, and the optional expectations in `options`.
 */
export async function verifyServerRecord(input: unknown, options: VerifyOptions = {}): Promise<VerifyResult<ServerRecord>> {
  const result = await verifyEnvelope(SERVER_RECORD_DOMAIN, input, parseServerRecord, options);
  if (result.ok && options.numBlocks !== undefined && result.record.numBlocks !== options.numBlocks) {
    return { ok: false, reason: `record says numBlocks ${result.record.numBlocks}, expected ${options.numBlocks}`, peerId: result.record.peerId };
  }
  return result;
}

/** Verifies a heartbeat load report; pass `nonce` to require it echoes the request's nonce. */
export async function verifyLoadReport(input: unknown, options: VerifyOptions & { nonce?: string } = {}): Promise<VerifyResult<LoadReport>> {
  const result = await verifyEnvelope(LOAD_REPORT_DOMAIN, input, parseLoadReport, options);
  if (result.ok && options.nonce !== undefined && result.record.nonce !== options.nonce) {
    return { ok: false, reason: 'nonce does not match the request', peerId: result.record.peerId };
  }
  return result;
}
