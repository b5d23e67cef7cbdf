/**
 * A node's long-lived identity: an Ed25519 libp2p private key kept in a file (libp2p protobuf encoding, mode 0600).
 * The same file gives the same peer id on every start, so records and reputations follow the server.
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { silentLogger, type ComponentLogger } from '../util/logger.js';
import { IdentityFileError } from './errors.js';
import { createSecretFile, readSecretFile } from './files.js';

export interface Identity {
  privateKey: PrivateKey;
  /** The peer id (base58 string) that the key gives. */
  peerId: string;
  /** True when the file did not exist and a new key was written (by this call). */
  created: boolean;
  /** The key file grants group or others some access (a warning was logged); false for in-memory identities. */
  readableByOthers: boolean;
}

export interface KeyFileOptions {
  /** Where a warning about a key file readable by others goes (component `corolla:swarm`); default silent. */
  logger?: ComponentLogger;
}

/** Largest identity file we read; an Ed25519 protobuf key is 68 bytes. */
export const MAX_IDENTITY_BYTES = 4096;

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
 * when the file does not exist. A file that exists but is unreadable as a key (or is not a regular file, or is
 * over MAX_IDENTITY_BYTES) throws IdentityFileError; it is never overwritten, because it may be someone's only copy
 * of their identity. Two processes starting together on a fresh path get the same key: the file is created
 * exclusively, and the loser reads the winner's key.
 */
export async function loadOrCreateIdentity(file: string, options: KeyFileOptions = {}): Promise<Identity> {
  const log = (options.logger ?? silentLogger).forComponent('corolla:swarm');
  const load = async (): Promise<Identity | undefined> => {
    const read = await readSecretFile(file, MAX_IDENTITY_BYTES, (reason, cause) => new IdentityFileError(file, reason, { cause }));
    if (!read) return undefined;
    const privateKey = parseIdentity(file, read.bytes);
    if (read.readableByOthers) log.error(`identity file ${file} is readable by others; chmod 600 it`);
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: false, readableByOthers: read.readableByOthers };
  };
  const existing = await load();
  if (existing) return existing;
  const privateKey = await generateKeyPair('Ed25519');
  try {
    await createSecretFile(file, privateKeyToProtobuf(privateKey));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      // another process created it first: use its key, not ours
      const winner = await load();
      if (winner) return winner;
    }
    throw new IdentityFileError(file, `cannot write new identity (${code ?? 'unknown error'})`, { cause: error });
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: true, readableByOthers: false };
}

/** Generates a fresh Ed25519 identity in memory (tests, ephemeral clients). */
export async function generateIdentity(): Promise<Identity> {
  const privateKey = await generateKeyPair('Ed25519');
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: true, readableByOthers: false };
}
