/**
 * Signed server records and load reports: their schemas (the types are derived from them), limits and signing
 * domains. A record is a plain JSON object with a major version `v`. Within a major version, writers may add
 * optional fields; readers accept fields they do not know and drop them from the typed record (the signature still
 * covers them, and the whole envelope stays under MAX_ENVELOPE_BYTES). A change readers must understand bumps `v`.
 * See docs/protocols.md.
 */
import { multiaddr } from '@multiformats/multiaddr';
import { checkSchema, intIn, numberIn, oneOf, openObject, strictObject, text, z, type SchemaResult } from '../../wire/schema.js';

/** Major version of records and load reports; readers refuse any other. */
export const RECORD_VERSION = 1 as const;
/** Signing domain of server announcement records. */
export const SERVER_RECORD_DOMAIN = 'corolla/server-record/v1';
/** Signing domain of heartbeat load reports. */
export const LOAD_REPORT_DOMAIN = 'corolla/load-report/v1';
/** Largest encoded envelope we accept (DHT values, protocol replies), and largest signed record. */
export const MAX_ENVELOPE_BYTES = 8 * 1024;
/** Default clock skew tolerated between a record's signer and its reader. */
export const DEFAULT_CLOCK_SKEW_MS = 30_000;
/** A record may not claim to live longer than this after it was issued. */
export const MAX_RECORD_TTL_MS = 60 * 60 * 1000;
export const MAX_NUM_BLOCKS = 100_000;
export const MAX_ADDRS = 32;

export const SERVER_STATES = ['joining', 'online', 'offline'] as const;
export type ServerState = (typeof SERVER_STATES)[number];

const MODEL_ID = /^[\x21-\x7e]+$/;
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]+$/; // base58btc (Qm… and 12D3Koo… ids)
const TOKEN = /^[a-z0-9][a-z0-9_.\-]*$/;
const ETH_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
/** A 65-byte secp256k1 signature (r, s, v) in 0x hex. */
const ETH_SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
const NONCE = /^[A-Za-z0-9_\-+/=]+$/;
/** 1..8 lowercase tokens joined by '/', e.g. "ort-cpu/f32/act-int8". */
const ENGINE = /^[a-z0-9][a-z0-9_.\-]*(\/[a-z0-9][a-z0-9_.\-]*){0,7}$/;

const isMultiaddr = (value: string): boolean => {
  try {
    multiaddr(value);
    return true;
  } catch {
    return false;
  }
};

export const modelIdField = text(1, 256, MODEL_ID);
export const peerIdField = text(16, 128, PEER_ID);
export const nonceField = text(8, 128, NONCE);
const state = oneOf(SERVER_STATES);
const time = intIn(1);

const load = openObject({ activeSessions: intIn(0, 1_000_000), queuedSteps: intIn(0, 1_000_000_000) });

/**
 * Throughput of a server, in tokens per second.
 * - `compute`: single-token decode steps per second through the server's WHOLE span (one token, batch 1, with cache).
 * - `network`: hidden-state tokens per second the server's link can carry (measured or estimated).
 * - `effective`: exactly `Math.min(compute, network)`; what routing should assume.
 */
const throughput = openObject({ compute: numberIn(0, 1e12), network: numberIn(0, 1e12), effective: numberIn(0, 1e12) });

const accelerator = openObject({
  kind: oneOf(['cpu', 'cuda']),
  name: text(1, 128),
  memoryBytes: intIn(0).optional(),
});

export const serverRecordSchema = openObject({
  v: z.literal(RECORD_VERSION),
  modelId: modelIdField,
  peerId: peerIdField,
  /** Full multiaddrs the server can be dialed on (normally ending in /p2p/<peerId>). */
  addrs: z
    .array(text(1, 512).refine(isMultiaddr, { error: 'must be a multiaddr' }), { error: 'must be an array' })
    .max(MAX_ADDRS, { error: `must hold at most ${MAX_ADDRS} addresses` }),
  /** Number of transformer blocks in the model; `span` lies within `[0, numBlocks]`. */
  numBlocks: intIn(1, MAX_NUM_BLOCKS),
  /** The served blocks, half-open `[start, end)` (a BlockRange). */
  span: openObject({ start: intIn(0, MAX_NUM_BLOCKS), end: intIn(1, MAX_NUM_BLOCKS) }),
  state,
  throughput,
  /** KV-cache capacity left, in tokens (summed over the span's sessions budget). */
  cacheTokensLeft: intIn(0),
  /** Activation/compute dtype, e.g. "f32", "f16", "bf16". */
  dtype: text(1, 32, TOKEN),
  /** Weight quantization, e.g. "none", "q8_0", "q4_0". */
  quantization: text(1, 32, TOKEN),
  softwareVersion: text(1, 64, /^[\x21-\x7e]+$/),
  /**
   * Engine fingerprint: backend, activation precision, activation quantization ("ort-cpu/f32/act-int8"). Servers
   * with equal fingerprints (and model id) compute bit-identical outputs for equal steps, so failover prefers a
   * replacement with the failed server's. Optional (a minor addition): older records have none.
   */
  engine: text(1, 64, ENGINE).optional(),
  publicName: text(1, 64).optional(),
  location: text(1, 64).optional(),
  accelerator,
  /** Ethereum address (0x + 40 hex) for rewards: only a claim unless `ethBinding` verifies (see chain/binding.ts). */
  ethAddress: text(42, 42, ETH_ADDRESS).optional(),
  /**
   * The Ethereum key's EIP-712 signature binding `ethAddress` to this `peerId` (chain/binding.ts PeerBinding, signed
   * at `issuedAt` unix ms). Readers check it before trusting `ethAddress` for anything that pays. Optional (a minor
   * addition): older records have none.
   */
  ethBinding: openObject({ issuedAt: time, signature: text(132, 132, ETH_SIGNATURE) }).optional(),
  load,
  /** Unix ms when signed. */
  issuedAt: time,
  /** Unix ms after which readers drop the record. */
  expiresAt: time,
});

/** A signed heartbeat answer: the server's live load, bound to the asker's nonce. */
export const loadReportSchema = openObject({
  v: z.literal(RECORD_VERSION),
  peerId: peerIdField,
  modelId: modelIdField,
  state,
  load,
  cacheTokensLeft: intIn(0),
  /** Echo of the requester's nonce (proves freshness). */
  nonce: nonceField,
  issuedAt: time,
  expiresAt: time,
});

/** The envelope is not signed, so it is strict: exactly these three fields. */
export const envelopeSchema = strictObject({
  record: z.custom<unknown>((value) => value !== undefined),
  /** base64 Ed25519 signature over `utf8(domain + "\n" + canonicalJson(record))`. */
  signature: z.string({ error: 'must be a string' }).max(128, { error: 'must be at most 128 characters' }),
  /** base64 of the libp2p protobuf encoding of the signer's public key. */
  publicKey: z.string({ error: 'must be a string' }).max(128, { error: 'must be at most 128 characters' }),
});

export type ServerRecord = z.output<typeof serverRecordSchema>;
export type LoadReport = z.output<typeof loadReportSchema>;
export type Throughput = ServerRecord['throughput'];
export type Accelerator = ServerRecord['accelerator'];
export type AcceleratorKind = Accelerator['kind'];
export type ServerLoad = ServerRecord['load'];

export interface SignedEnvelope<T> {
  record: T;
  /** base64 Ed25519 signature over `utf8(domain + "\n" + canonicalJson(record))`. */
  signature: string;
  /** base64 of the libp2p protobuf encoding of the signer's public key. */
  publicKey: string;
}

export interface Verified<T> {
  /** The record's known fields (unknown ones are dropped here and kept in `envelope.record`). */
  record: T;
  /** The envelope as signed and received (unknown fields included): pass this on, never a rebuilt one. */
  envelope: SignedEnvelope<T>;
}
export type VerifiedRecord = Verified<ServerRecord>;
export type VerifiedLoadReport = Verified<LoadReport>;

function unsupportedVersion(value: unknown, kind: 'record' | 'report'): string | undefined {
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, 'v')) return undefined;
  const v = (value as { v: unknown }).v;
  return v === RECORD_VERSION ? undefined : `unsupported ${kind} version ${JSON.stringify(v)?.slice(0, 20)}`;
}

function lifetimeProblem(record: { issuedAt: number; expiresAt: number }): string | undefined {
  return record.expiresAt <= record.issuedAt ? 'expiresAt must be after issuedAt' : undefined;
}

/** Validates a server record (schema, then the checks across fields): its known fields, or the first problem. */
export function parseServerRecord(value: unknown): SchemaResult<ServerRecord> {
  const version = unsupportedVersion(value, 'record');
  if (version) return { ok: false, reason: version };
  const result = checkSchema(serverRecordSchema, value);
  if (!result.ok) return result;
  const record = result.value;
  const { start, end } = record.span;
  const reason =
    (start >= end ? `span [${start}, ${end}) is empty` : undefined) ??
    (end > record.numBlocks ? `span [${start}, ${end}) exceeds numBlocks ${record.numBlocks}` : undefined) ??
    (record.throughput.effective !== Math.min(record.throughput.compute, record.throughput.network)
      ? 'throughput.effective must equal min(compute, network)'
      : undefined) ??
    lifetimeProblem(record);
  return reason ? { ok: false, reason } : result;
}

/** Validates a heartbeat load report: its known fields, or the first problem. */
export function parseLoadReport(value: unknown): SchemaResult<LoadReport> {
  const version = unsupportedVersion(value, 'report');
  if (version) return { ok: false, reason: version };
  const result = checkSchema(loadReportSchema, value);
  if (!result.ok) return result;
  const reason = lifetimeProblem(result.value);
  return reason ? { ok: false, reason } : result;
}
