/**
 * Signed server announcement records and signed load reports.
 *
 * A record is a plain JSON object (versioned, `v: 1`). It is signed with the server's libp2p Ed25519 key over a
 * canonical byte encoding: `utf8(DOMAIN + "\n" + canonicalJson(record))`, where canonicalJson sorts object keys and
 * has exactly one spelling for every value. The domain string separates record kinds, so a signed load report can
 * never be replayed as a server record or the other way round.
 *
 * The envelope `{ record, signature, publicKey }` carries the signature (base64) and the protobuf-encoded public key
 * (base64). A reader never trusts `record.peerId`: it derives the peer id from `publicKey` and requires equality.
 *
 * Every check returns a human-readable reason instead of throwing, so readers can skip bad records and log why.
 */
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { PrivateKey, PublicKey } from '@libp2p/interface';
import { InvalidRecordError } from './errors.js';

export const RECORD_VERSION = 1 as const;
/** Signing domain of server announcement records. */
export const SERVER_RECORD_DOMAIN = 'corolla/server-record/v1';
/** Signing domain of heartbeat load reports. */
export const LOAD_REPORT_DOMAIN = 'corolla/load-report/v1';
/** Largest encoded envelope we accept (DHT values, protocol replies). */
export const MAX_ENVELOPE_BYTES = 8 * 1024;
/** Default clock skew tolerated between a record's signer and its reader. */
export const DEFAULT_CLOCK_SKEW_MS = 30_000;
/** A record may not claim to live longer than this after it was issued. */
export const MAX_RECORD_TTL_MS = 60 * 60 * 1000;

export type ServerState = 'joining' | 'online' | 'offline';
export const SERVER_STATES: readonly ServerState[] = ['joining', 'online', 'offline'];
export type AcceleratorKind = 'cpu' | 'cuda';

/**
 * Throughput of a server, in tokens per second.
 * - `compute`: single-token decode steps per second through the server's WHOLE span (one token, batch 1, with cache).
 * - `network`: hidden-state tokens per second the server's link can carry (measured or estimated).
 * - `effective`: exactly `Math.min(compute, network)`; what routing should assume.
 */
export interface Throughput {
  compute: number;
  network: number;
  effective: number;
}

export interface Accelerator {
  kind: AcceleratorKind;
  name: string;
  memoryBytes?: number;
}

export interface ServerLoad {
  activeSessions: number;
  queuedSteps: number;
}

/** A block span `[start, end)`. */
export interface Span {
  start: number;
  end: number;
}

export interface ServerRecord {
  v: 1;
  modelId: string;
  peerId: string;
  /** Full multiaddrs the server can be dialed on (normally ending in /p2p/<peerId>). */
  addrs: string[];
  /** Number of transformer blocks in the model; `span` lies within `[0, numBlocks]`. */
  numBlocks: number;
  span: Span;
  state: ServerState;
  throughput: Throughput;
  /** KV-cache capacity left, in tokens (summed over the span's sessions budget). */
  cacheTokensLeft: number;
  /** Activation/compute dtype, e.g. "f32", "f16", "bf16". */
  dtype: string;
  /** Weight quantization, e.g. "none", "q8_0", "q4_0". */
  quantization: string;
  softwareVersion: string;
  publicName?: string;
  location?: string;
  accelerator: Accelerator;
  /** Ethereum address (0x + 40 hex) for rewards. Binding it to the peer is the incentive layer's job. */
  ethAddress?: string;
  load: ServerLoad;
  /** Unix ms when signed. */
  issuedAt: number;
  /** Unix ms after which readers drop the record. */
  expiresAt: number;
}

/** A signed heartbeat answer: the server's live load, bound to the asker's nonce. */
export interface LoadReport {
  v: 1;
  peerId: string;
  modelId: string;
  state: ServerState;
  load: ServerLoad;
  cacheTokensLeft: number;
  /** Echo of the requester's nonce (proves freshness). */
  nonce: string;
  issuedAt: number;
  expiresAt: number;
}

export interface SignedEnvelope<T> {
  record: T;
  /** base64 Ed25519 signature over `utf8(domain + "\n" + canonicalJson(record))`. */
  signature: string;
  /** base64 of the libp2p protobuf encoding of the signer's public key. */
  publicKey: string;
}

export interface Verified<T> {
  record: T;
  envelope: SignedEnvelope<T>;
}
export type VerifiedRecord = Verified<ServerRecord>;
export type VerifiedLoadReport = Verified<LoadReport>;

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

// ---------------------------------------------------------------------------------------------------------------
// Canonical encoding

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

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The exact bytes a record's signature covers. */
export function signingBytes(domain: string, record: unknown): Uint8Array {
  return encoder.encode(`${domain}\n${canonicalJson(record)}`);
}

/** Canonical UTF-8 JSON bytes of an envelope (what goes into the DHT and over the wire). */
export function encodeEnvelope(envelope: SignedEnvelope<unknown>): Uint8Array {
  return encoder.encode(canonicalJson(envelope));
}

function strictBase64(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

// ---------------------------------------------------------------------------------------------------------------
// Field validation: each check returns a reason string, or undefined when fine.

type Obj = Record<string, unknown>;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(value: Obj, path: string, required: readonly string[], optional: readonly string[] = []): string | undefined {
  for (const key of required) if (!Object.hasOwn(value, key)) return `missing field ${path}${key}`;
  for (const key of Object.keys(value)) {
    if (!required.includes(key) && !optional.includes(key)) return `unknown field ${path}${key}`;
  }
  return undefined;
}

function checkString(value: unknown, path: string, min: number, max: number, pattern?: RegExp): string | undefined {
  if (typeof value !== 'string') return `${path} must be a string`;
  if (value.length < min || value.length > max) return `${path} must be ${min}..${max} characters long`;
  if (CONTROL.test(value)) return `${path} contains control characters`;
  if (pattern && !pattern.test(value)) return `${path} has an invalid format`;
  return undefined;
}

function checkInt(value: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): string | undefined {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) return `${path} must be an integer`;
  if (value < min || value > max) return `${path} must be within ${min}..${max}`;
  return undefined;
}

function checkNumber(value: unknown, path: string, min: number, max: number): string | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return `${path} must be a finite number`;
  if (value < min || value > max) return `${path} must be within ${min}..${max}`;
  return undefined;
}

const MODEL_ID = /^[\x21-\x7e]+$/;
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]+$/; // base58btc (Qm… and 12D3Koo… ids)
const TOKEN = /^[a-z0-9][a-z0-9_.\-]*$/;
const ETH_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const NONCE = /^[A-Za-z0-9_\-+/=]+$/;
const MAX_ADDRS = 32;
export const MAX_NUM_BLOCKS = 100_000;

function checkModelId(value: unknown, path = 'modelId'): string | undefined {
  return checkString(value, path, 1, 256, MODEL_ID);
}

function checkPeerIdField(value: unknown, path = 'peerId'): string | undefined {
  return checkString(value, path, 16, 128, PEER_ID);
}

function checkLoad(value: unknown, path: string): string | undefined {
  if (!isObj(value)) return `${path} must be an object`;
  return checkKeys(value, `${path}.`, ['activeSessions', 'queuedSteps'])
    ?? checkInt(value.activeSessions, `${path}.activeSessions`, 0, 1_000_000)
    ?? checkInt(value.queuedSteps, `${path}.queuedSteps`, 0, 1_000_000_000);
}

function checkTimes(record: Obj): string | undefined {
  return checkInt(record.issuedAt, 'issuedAt', 1)
    ?? checkInt(record.expiresAt, 'expiresAt', 1)
    ?? ((record.expiresAt as number) <= (record.issuedAt as number) ? 'expiresAt must be after issuedAt' : undefined);
}

/** Structural validation of a server record: types, ranges, lengths. Returns a reason, or undefined when valid. */
export function validateServerRecord(value: unknown): string | undefined {
  if (!isObj(value)) return 'record must be an object';
  const keys = checkKeys(
    value,
    '',
    ['v', 'modelId', 'peerId', 'addrs', 'numBlocks', 'span', 'state', 'throughput', 'cacheTokensLeft', 'dtype', 'quantization', 'softwareVersion', 'accelerator', 'load', 'issuedAt', 'expiresAt'],
    ['publicName', 'location', 'ethAddress'],
  );
  if (keys) return keys;
  if (value.v !== RECORD_VERSION) return `unsupported record version ${JSON.stringify(value.v)}`;
  const basic = checkModelId(value.modelId) ?? checkPeerIdField(value.peerId);
  if (basic) return basic;

  if (!Array.isArray(value.addrs)) return 'addrs must be an array';
  if (value.addrs.length > MAX_ADDRS) return `addrs must hold at most ${MAX_ADDRS} addresses`;
  for (const [i, addr] of value.addrs.entries()) {
    const reason = checkString(addr, `addrs[${i}]`, 1, 512);
    if (reason) return reason;
    try {
      multiaddr(addr as string);
    } catch {
      return `addrs[${i}] is not a valid multiaddr`;
    }
  }

  const blocks = checkInt(value.numBlocks, 'numBlocks', 1, MAX_NUM_BLOCKS);
  if (blocks) return blocks;
  if (!isObj(value.span)) return 'span must be an object';
  const span = checkKeys(value.span, 'span.', ['start', 'end'])
    ?? checkInt(value.span.start, 'span.start', 0, MAX_NUM_BLOCKS)
    ?? checkInt(value.span.end, 'span.end', 1, MAX_NUM_BLOCKS);
  if (span) return span;
  const { start, end } = value.span as { start: number; end: number };
  if (start >= end) return `span [${start}, ${end}) is empty`;
  if (end > (value.numBlocks as number)) return `span [${start}, ${end}) exceeds numBlocks ${value.numBlocks as number}`;

  if (!SERVER_STATES.includes(value.state as ServerState)) return `state must be one of ${SERVER_STATES.join(', ')}`;

  if (!isObj(value.throughput)) return 'throughput must be an object';
  const tp = value.throughput;
  const throughput = checkKeys(tp, 'throughput.', ['compute', 'network', 'effective'])
    ?? checkNumber(tp.compute, 'throughput.compute', 0, 1e12)
    ?? checkNumber(tp.network, 'throughput.network', 0, 1e12)
    ?? checkNumber(tp.effective, 'throughput.effective', 0, 1e12);
  if (throughput) return throughput;
  if (tp.effective !== Math.min(tp.compute as number, tp.network as number)) return 'throughput.effective must equal min(compute, network)';

  const rest = checkInt(value.cacheTokensLeft, 'cacheTokensLeft', 0)
    ?? checkString(value.dtype, 'dtype', 1, 32, TOKEN)
    ?? checkString(value.quantization, 'quantization', 1, 32, TOKEN)
    ?? checkString(value.softwareVersion, 'softwareVersion', 1, 64, /^[\x21-\x7e]+$/)
    ?? (value.publicName === undefined ? undefined : checkString(value.publicName, 'publicName', 1, 64))
    ?? (value.location === undefined ? undefined : checkString(value.location, 'location', 1, 64))
    ?? (value.ethAddress === undefined ? undefined : checkString(value.ethAddress, 'ethAddress', 42, 42, ETH_ADDRESS));
  if (rest) return rest;

  if (!isObj(value.accelerator)) return 'accelerator must be an object';
  const acc = value.accelerator;
  const accelerator = checkKeys(acc, 'accelerator.', ['kind', 'name'], ['memoryBytes'])
    ?? (acc.kind === 'cpu' || acc.kind === 'cuda' ? undefined : 'accelerator.kind must be cpu or cuda')
    ?? checkString(acc.name, 'accelerator.name', 1, 128)
    ?? (acc.memoryBytes === undefined ? undefined : checkInt(acc.memoryBytes, 'accelerator.memoryBytes', 0));
  if (accelerator) return accelerator;

  return checkLoad(value.load, 'load') ?? checkTimes(value);
}

/** Structural validation of a heartbeat load report. */
export function validateLoadReport(value: unknown): string | undefined {
  if (!isObj(value)) return 'report must be an object';
  return checkKeys(value, '', ['v', 'peerId', 'modelId', 'state', 'load', 'cacheTokensLeft', 'nonce', 'issuedAt', 'expiresAt'])
    ?? (value.v !== RECORD_VERSION ? `unsupported report version ${JSON.stringify(value.v)}` : undefined)
    ?? checkPeerIdField(value.peerId)
    ?? checkModelId(value.modelId)
    ?? (SERVER_STATES.includes(value.state as ServerState) ? undefined : `state must be one of ${SERVER_STATES.join(', ')}`)
    ?? checkLoad(value.load, 'load')
    ?? checkInt(value.cacheTokensLeft, 'cacheTokensLeft', 0)
    ?? checkString(value.nonce, 'nonce', 8, 128, NONCE)
    ?? checkTimes(value);
}

// ---------------------------------------------------------------------------------------------------------------
// Signing and verification

function peerIdOfKey(privateKey: PrivateKey): string {
  return peerIdFromPrivateKey(privateKey).toString();
}

async function signEnvelope<T extends { peerId: string }>(domain: string, privateKey: PrivateKey, record: T): Promise<SignedEnvelope<T>> {
  if (privateKey.type !== 'Ed25519') throw new InvalidRecordError(`records are signed with Ed25519 keys, not ${privateKey.type}`);
  if (record.peerId !== peerIdOfKey(privateKey)) throw new InvalidRecordError('record.peerId is not the signing key\'s peer id');
  const signature = await privateKey.sign(signingBytes(domain, record));
  return { record, signature: toBase64(signature), publicKey: toBase64(publicKeyToProtobuf(privateKey.publicKey)) };
}

/** Signs a complete server record. Throws InvalidRecordError when the record itself is invalid. */
export async function signServerRecord(privateKey: PrivateKey, record: ServerRecord): Promise<SignedEnvelope<ServerRecord>> {
  const reason = validateServerRecord(record);
  if (reason) throw new InvalidRecordError(reason);
  return signEnvelope(SERVER_RECORD_DOMAIN, privateKey, record);
}

/** Signs a heartbeat load report. */
export async function signLoadReport(privateKey: PrivateKey, report: LoadReport): Promise<SignedEnvelope<LoadReport>> {
  const reason = validateLoadReport(report);
  if (reason) throw new InvalidRecordError(reason);
  return signEnvelope(LOAD_REPORT_DOMAIN, privateKey, report);
}

/** What a server fills in; the signer adds `v`, `peerId`, `effective`, `issuedAt` and `expiresAt`. */
export type ServerRecordInput = Omit<ServerRecord, 'v' | 'peerId' | 'issuedAt' | 'expiresAt' | 'state' | 'load' | 'throughput'> & {
  state?: ServerState;
  load?: ServerLoad;
  throughput: Omit<Throughput, 'effective'>;
};

/** Builds a complete record from `input` (issuedAt = now, expiresAt = now + ttlMs) and signs it. */
export async function createSignedServerRecord(
  privateKey: PrivateKey,
  input: ServerRecordInput,
  options: { now?: number; ttlMs: number },
): Promise<SignedEnvelope<ServerRecord>> {
  const now = Math.floor(options.now ?? Date.now());
  const { compute, network } = input.throughput;
  const record: ServerRecord = {
    v: RECORD_VERSION,
    modelId: input.modelId,
    peerId: peerIdOfKey(privateKey),
    addrs: [...input.addrs],
    numBlocks: input.numBlocks,
    span: { start: input.span.start, end: input.span.end },
    state: input.state ?? 'online',
    throughput: { compute, network, effective: Math.min(compute, network) },
    cacheTokensLeft: input.cacheTokensLeft,
    dtype: input.dtype,
    quantization: input.quantization,
    softwareVersion: input.softwareVersion,
    publicName: input.publicName,
    location: input.location,
    accelerator: stripUndefined({ ...input.accelerator }),
    ethAddress: input.ethAddress,
    load: { activeSessions: input.load?.activeSessions ?? 0, queuedSteps: input.load?.queuedSteps ?? 0 },
    issuedAt: now,
    expiresAt: now + Math.floor(options.ttlMs),
  };
  return signServerRecord(privateKey, stripUndefined(record));
}

function stripUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}

function parseEnvelopeInput(input: unknown): { envelope?: Obj; reason?: string } {
  let value = input;
  if (input instanceof Uint8Array) {
    if (input.byteLength > MAX_ENVELOPE_BYTES) return { reason: `envelope is ${input.byteLength} bytes (limit ${MAX_ENVELOPE_BYTES})` };
    try {
      value = JSON.parse(decoder.decode(input));
    } catch {
      return { reason: 'malformed envelope: not UTF-8 JSON' };
    }
  }
  if (!isObj(value)) return { reason: 'malformed envelope: not an object' };
  const keys = checkKeys(value, 'envelope.', ['record', 'signature', 'publicKey']);
  if (keys) return { reason: `malformed envelope: ${keys}` };
  if (typeof value.signature !== 'string' || value.signature.length > 128) return { reason: 'malformed envelope: bad signature field' };
  if (typeof value.publicKey !== 'string' || value.publicKey.length > 128) return { reason: 'malformed envelope: bad publicKey field' };
  return { envelope: value };
}

async function verifyEnvelope<T extends { peerId: string; modelId: string; issuedAt: number; expiresAt: number }>(
  domain: string,
  input: unknown,
  validate: (record: unknown) => string | undefined,
  options: VerifyOptions,
): Promise<VerifyResult<T>> {
  const parsed = parseEnvelopeInput(input);
  if (!parsed.envelope) return { ok: false, reason: parsed.reason ?? 'malformed envelope' };
  const envelope = parsed.envelope;
  const claimedPeer = isObj(envelope.record) && typeof envelope.record.peerId === 'string' ? envelope.record.peerId.slice(0, 128) : undefined;
  const fail = (reason: string): VerifyResult<T> => ({ ok: false, reason, peerId: claimedPeer });

  const invalid = validate(envelope.record);
  if (invalid) return fail(`invalid record: ${invalid}`);
  const record = envelope.record as T;

  // Identity: the key must be an Ed25519 key whose peer id is the record's peerId.
  const keyBytes = strictBase64(envelope.publicKey as string);
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
  const signature = strictBase64(envelope.signature as string);
  if (!signature || signature.byteLength !== 64) return fail('signature is not a base64 Ed25519 signature');
  let good = false;
  try {
    good = await publicKey.verify(signingBytes(domain, record), signature);
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

  return { ok: true, record, envelope: envelope as unknown as SignedEnvelope<T> };
}

/**
 * Verifies a server record envelope given as encoded bytes or an already-parsed object: structure, Ed25519 key,
 * peer id derivation, signature, freshness, and the optional expectations in `options`.
 */
export async function verifyServerRecord(input: unknown, options: VerifyOptions = {}): Promise<VerifyResult<ServerRecord>> {
  const result = await verifyEnvelope<ServerRecord>(SERVER_RECORD_DOMAIN, input, validateServerRecord, options);
  if (result.ok && options.numBlocks !== undefined && result.record.numBlocks !== options.numBlocks) {
    return { ok: false, reason: `record says numBlocks ${result.record.numBlocks}, expected ${options.numBlocks}`, peerId: result.record.peerId };
  }
  return result;
}

/** Verifies a heartbeat load report; pass `nonce` to require it echoes the request's nonce. */
export async function verifyLoadReport(input: unknown, options: VerifyOptions & { nonce?: string } = {}): Promise<VerifyResult<LoadReport>> {
  const result = await verifyEnvelope<LoadReport>(LOAD_REPORT_DOMAIN, input, validateLoadReport, options);
  if (result.ok && options.nonce !== undefined && result.record.nonce !== options.nonce) {
    return { ok: false, reason: 'nonce does not match the request', peerId: result.record.peerId };
  }
  return result;
}
