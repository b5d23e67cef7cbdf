/**
 * Step attestations: a server signs every step reply with its libp2p (Ed25519) peer key, so that a reply is
 * evidence a third party can check (the oracle, given two conflicting replies; see client/spot-check.ts and
 * docs/oracle.md). The signature covers
 *
 *   the session id, the step's position and tokens, the span [start, end), the reply's codec,
 *   the HISTORY digest: a hash chain over every step's (position, tokens, input digest) from position 0 up to and
 *     including this one, so two replies with equal history digests answer the same input in the same KV state,
 *   the OUTPUT digest: SHA-256 of the reply's values as the receiver decodes them (f32, little-endian).
 *
 * Only the signature travels (`stepResult.attestation`, 64 bytes in base64url); the client computes both digests
 * from what it sent and received, and the signature verifies only if the server saw the same. Cost: two SHA-256 over
 * the step's tensors and one Ed25519 signature per step (bench/attestation.ts).
 */
import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { decodeTensor, encodeTensor, type WireDtype } from './tensor-codec.js';

/** What a step attestation says (the signature is over `attestationBytes` of it). */
export interface StepClaim {
  readonly sessionId: string;
  readonly position: number;
  readonly tokens: number;
  readonly spanStart: number;
  readonly spanEnd: number;
  /** The reply's codec: the output digest is of its values after this codec. */
  readonly dtype: WireDtype;
  /** Hex SHA-256 chain of the session's inputs up to and including this step. */
  readonly history: string;
  /** Hex SHA-256 of the reply's f32 values. */
  readonly output: string;
}

/** A claim with its signature, and the peer that signed it. */
export interface SignedStep {
  readonly peerId: string;
  readonly claim: StepClaim;
  /** base64url Ed25519 signature of attestationBytes(claim). */
  readonly signature: string;
}

const DOMAIN = 'corolla/step-attestation/1';
/** The history before the first step. */
export const EMPTY_HISTORY = '0'.repeat(64);

/** Hex SHA-256 of the f32 values' little-endian bytes. */
export function tensorDigest(values: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest('hex');
}

/** The values as a receiver of them in `dtype` decodes them (the same array for f32). */
export function asReceived(values: Float32Array, width: number, dtype: WireDtype): Float32Array {
  if (dtype === 'f32') return values;
  const shape = [values.length / width, width];
  return decodeTensor(encodeTensor(values, shape, dtype), shape, dtype);
}

/**
 * The history digest of each step boundary of one session, kept the same way by the server (from what it decoded)
 * and the client (from what it sent). A step at a position that is not a boundary (a rewind into the middle of an
 * earlier step) starts from a marker of that position, so both sides still agree.
 */
export class HistoryChain {
  /** position → history digest after the step that ended there. */
  private readonly boundaries = new Map<number, string>([[0, EMPTY_HISTORY]]);

  /** Records the step and returns its history digest. */
  extend(position: number, tokens: number, inputDigest: string): string {
    const before = this.boundaries.get(position) ?? createHash('sha256').update(`${DOMAIN}/gap/${position}`).digest('hex');
    for (const key of this.boundaries.keys()) if (key > position) this.boundaries.delete(key);
    const after = createHash('sha256').update(`${before}:${position}:${tokens}:${inputDigest}`).digest('hex');
    this.boundaries.set(position + tokens, after);
    return after;
  }
}

/** The bytes an attestation signs. */
export function attestationBytes(claim: StepClaim): Uint8Array {
  const text = [DOMAIN, claim.sessionId, claim.position, claim.tokens, claim.spanStart, claim.spanEnd, claim.dtype, claim.history, claim.output].join('\n');
  return new TextEncoder().encode(text);
}

// Ed25519 through node:crypto (OpenSSL): ~20× faster than the pure-JS signer behind libp2p's keys, which matters
// once per step. The DER prefixes wrap a raw 32-byte seed (PKCS#8) or public key (SPKI).
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const signingKeys = new WeakMap<PrivateKey, KeyObject>();
const verifyingKeys = new Map<string, KeyObject | null>();
const MAX_VERIFYING_KEYS = 4096;

function signingKey(key: PrivateKey): KeyObject | undefined {
  if (key.type !== 'Ed25519') return undefined;
  let object = signingKeys.get(key);
  if (!object) signingKeys.set(key, (object = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, key.raw.subarray(0, 32)]), format: 'der', type: 'pkcs8' })));
  return object;
}

function verifyingKey(peerId: string): KeyObject | null {
  let object = verifyingKeys.get(peerId);
  if (object === undefined) {
    const publicKey = peerIdFromString(peerId).publicKey;
    object = publicKey?.type === 'Ed25519' ? createPublicKey({ key: Buffer.concat([SPKI_ED25519, publicKey.raw]), format: 'der', type: 'spki' }) : null;
    if (verifyingKeys.size >= MAX_VERIFYING_KEYS) verifyingKeys.delete(verifyingKeys.keys().next().value!);
    verifyingKeys.set(peerId, object);
  }
  return object;
}

/** Signs `claim` with the server's peer key (Ed25519); base64url. */
export async function signAttestation(key: PrivateKey, claim: StepClaim): Promise<string> {
  const object = signingKey(key);
  const bytes = attestationBytes(claim);
  return Buffer.from(object ? cryptoSign(null, bytes, object) : await key.sign(bytes)).toString('base64url');
}

/**
 * True when `signature` is `peerId`'s Ed25519 signature of `claim` (never rejects). The check runs on libuv's thread
 * pool, so a client's event loop is free while it runs.
 */
export async function verifyAttestation(peerId: string, claim: StepClaim, signature: string): Promise<boolean> {
  try {
    const bytes = Buffer.from(signature, 'base64url');
    const object = bytes.length === 64 ? verifyingKey(peerId) : null;
    if (object === null) return false;
    return await new Promise<boolean>((resolve) => cryptoVerify(null, attestationBytes(claim), object, bytes, (error, valid) => resolve(!error && valid)));
  } catch {
    return false;
  }
}

/**
 * How far `a` is from `b`, the reference: the largest over rows of rms(a − b) / rms(b). Relative per row, so a row of
 * large activations does not hide a wrong row of small ones; rms rather than max, so one value rounded one f16 step
 * the other way does not dominate. Infinity when the shapes differ.
 */
export function rowDeviation(a: Float32Array, b: Float32Array, width: number): number {
  if (a.length !== b.length || width < 1 || a.length % width !== 0) return Infinity;
  let worst = 0;
  for (let row = 0; row < a.length; row += width) {
    let diff = 0;
    let norm = 0;
    for (let i = row; i < row + width; i++) {
      const d = a[i]! - b[i]!;
      diff += d * d;
      norm += b[i]! * b[i]!;
    }
    const deviation = norm > 0 ? Math.sqrt(diff / norm) : diff > 0 ? Infinity : 0;
    if (!(deviation <= worst)) worst = deviation;
  }
  return worst;
}

/**
 * The largest rowDeviation between two honest replies to the same input, by reply codec, with a wide margin: a
 * larger one means one of the two servers computed something else. Measured (bench/spot-check-tolerance.ts): 1 vs 2
 * threads, batched vs alone, f32 vs f16 on the wire stay orders of magnitude below; perturbing a span's output by
 * 1 % noise gives ~1e-2 and skipping a block ~0.3–1 (docs/oracle.md has the figures).
 */
export const DEVIATION_TOLERANCE: Readonly<Record<WireDtype, number>> = Object.freeze({ f32: 2e-3, f16: 2e-3, int8: 3e-2 });

/**
 * The digest of a pair of signed replies (hex SHA-256 over both claims and signatures, in order): what a payer signs
 * when it reports them (chain/evidence.ts), and the key under which the oracle keeps them.
 */
export function evidenceDigest(suspect: SignedStep, checker: SignedStep): string {
  const hash = createHash('sha256');
  for (const step of [suspect, checker]) hash.update(attestationBytes(step.claim)).update(`\n${step.peerId}\n${step.signature}\n`);
  return hash.digest('hex');
}

/** Why two signed replies do not show a wrong result, or undefined when they do (signatures are checked apart). */
export function conflictProblem(suspect: SignedStep, checker: SignedStep): string | undefined {
  const a = suspect.claim;
  const b = checker.claim;
  if (suspect.peerId === checker.peerId) return 'both replies come from the same peer';
  for (const field of ['position', 'tokens', 'spanStart', 'spanEnd', 'dtype', 'history'] as const) {
    if (a[field] !== b[field]) return `the replies answer different steps: ${field} ${a[field]} ≠ ${b[field]}`;
  }
  return undefined;
}
