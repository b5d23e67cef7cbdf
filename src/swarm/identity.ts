/**
 * A node's long-lived identity: an Ed25519 libp2p private key kept in a file (libp2p protobuf encoding, mode 0600).
 * The same file gives the same peer id on every start, so records and reputations follow the server.
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { IdentityFileError } from './errors.js';

export interface Identity {
  privateKey: PrivateKey;
  /** The peer id (base58 string) that the key gives. */
  peerId: string;
  /** True when the file did not exist and a new key was written. */
  created: boolean;
}

/** Largest identity file we try to parse; an Ed25519 protobuf key is 68 bytes. */
const MAX_IDENTITY_BYTES = 4096;

/** Writes `bytes` to `file` atomically (temp file + rename) with mode 0600, creating parent directories. */
export async function writePrivateFile(file: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/** Parses identity file bytes; throws IdentityFileError naming `file` when they are not an Ed25519 private key. */
export function parseIdentity(file: string, bytes: Uint8Array): PrivateKey {
  if (bytes.byteLength === 0) throw new IdentityFileError(file, 'file is empty');
  if (bytes.byteLength > MAX_IDENTITY_BYTES) throw new IdentityFileError(file, `file is ${bytes.byteLength} bytes, too large for a private key`);
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch (cause) {
    throw new IdentityFileError(file, 'not a libp2p protobuf-encoded private key (corrupt file?)', { cause });
  }
  if (key.type !== 'Ed25519') throw new IdentityFileError(file, `holds a ${key.type} key; Corolla identities are Ed25519`);
  return key;
}

/**
 * Loads the private key from `file`, or creates a new Ed25519 key there (mode 0600, parent directories created)
 * when the file does not exist. A file that exists but is unreadable as a key throws IdentityFileError; it is never
 * overwritten, because it may be someone's only copy of their identity.
 */
export async function loadOrCreateIdentity(file: string): Promise<Identity> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new IdentityFileError(file, `cannot read file (${code ?? 'unknown error'})`, { cause: error });
  }
  if (bytes) {
    const privateKey = parseIdentity(file, bytes);
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: false };
  }
  const privateKey = await generateKeyPair('Ed25519');
  try {
    await writePrivateFile(file, privateKeyToProtobuf(privateKey));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new IdentityFileError(file, `cannot write new identity (${code ?? 'unknown error'})`, { cause: error });
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: true };
}

/** Generates a fresh Ed25519 identity in memory (tests, ephemeral clients). */
export async function generateIdentity(): Promise<Identity> {
  const privateKey = await generateKeyPair('Ed25519');
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: true };
}
