/** Signing: a server signs its own records and load reports with its libp2p Ed25519 key. */
import { publicKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { InvalidRecordError } from '../errors.js';
import { signingBytes, toBase64 } from './canonical.js';
import {
  LOAD_REPORT_DOMAIN,
  RECORD_VERSION,
  SERVER_RECORD_DOMAIN,
  parseLoadReport,
  parseServerRecord,
  type LoadReport,
  type ServerLoad,
  type ServerRecord,
  type ServerState,
  type SignedEnvelope,
  type Throughput,
} from './schema.js';

/** Signs exactly the validated fields of `record` (this version's fields: a writer never signs what it cannot check). */
async function signEnvelope<T extends { peerId: string }>(domain: string, privateKey: PrivateKey, record: T): Promise<SignedEnvelope<T>> {
  if (privateKey.type !== 'Ed25519') throw new InvalidRecordError(`records are signed with Ed25519 keys, not ${privateKey.type}`);
  if (record.peerId !== peerIdFromPrivateKey(privateKey).toString()) throw new InvalidRecordError('record.peerId is not the signing key\'s peer id');
  const signature = await privateKey.sign(signingBytes(domain, record));
  return { record, signature: toBase64(signature), publicKey: toBase64(publicKeyToProtobuf(privateKey.publicKey)) };
}

/** Signs a complete server record. Throws InvalidRecordError when the record itself is invalid. */
export async function signServerRecord(privateKey: PrivateKey, record: ServerRecord): Promise<SignedEnvelope<ServerRecord>> {
  const parsed = parseServerRecord(record);
  if (!parsed.ok) throw new InvalidRecordError(parsed.reason);
  return signEnvelope(SERVER_RECORD_DOMAIN, privateKey, parsed.value);
}

/** Signs a heartbeat load report. */
export async function signLoadReport(privateKey: PrivateKey, report: LoadReport): Promise<SignedEnvelope<LoadReport>> {
  const parsed = parseLoadReport(report);
  if (!parsed.ok) throw new InvalidRecordError(parsed.reason);
  return signEnvelope(LOAD_REPORT_DOMAIN, privateKey, parsed.value);
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
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    addrs: [...input.addrs],
    numBlocks: input.numBlocks,
    span: { start: input.span.start, end: input.span.end },
    state: input.state ?? 'online',
    throughput: { compute, network, effective: Math.min(compute, network) },
    cacheTokensLeft: input.cacheTokensLeft,
    dtype: input.dtype,
    quantization: input.quantization,
    softwareVersion: input.softwareVersion,
    engine: input.engine,
    publicName: input.publicName,
    location: input.location,
    accelerator: stripUndefined({ ...input.accelerator }),
    ethAddress: input.ethAddress,
    ethBinding: input.ethBinding && { issuedAt: input.ethBinding.issuedAt, signature: input.ethBinding.signature },
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
