/**
 * Pre-shared keys for private swarms (@libp2p/pnet). The file format is the one go-ipfs/kubo and js-libp2p use:
 *
 *   /key/swarm/psk/1.0.0/
 *   /base16/
 *   <64 hex characters = 32 random bytes>
 *
 * Peers without the same key cannot complete a connection with a node that has one.
 */
import { randomBytes } from 'node:crypto';
import { silentLogger } from '../util/logger.js';
import { PskFileError } from './errors.js';
import { createSecretFile, readSecretFile } from './files.js';
import type { KeyFileOptions } from './identity.js';

const PSK_HEADER = '/key/swarm/psk/1.0.0/';
const PSK_CODEC = '/base16/';
/** Largest swarm key file we read; a v1 key file is 87 bytes. */
export const MAX_PSK_BYTES = 1024;

/** A new random swarm key, encoded in the file format above (this is what `createSwarmNode({ psk })` takes). */
export function generatePsk(): Uint8Array {
  return new TextEncoder().encode(`${PSK_HEADER}\n${PSK_CODEC}\n${randomBytes(32).toString('hex')}\n`);
}

/** Checks that `bytes` is a v1 swarm key; returns it normalised (no trailing whitespace) or throws PskFileError. */
export function parsePsk(bytes: Uint8Array, file = '<psk>'): Uint8Array {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new PskFileError(file, 'not UTF-8 text', { cause });
  }
  const lines = text.trim().split(/\r?\n/);
  if (lines.length !== 3) throw new PskFileError(file, `expected 3 lines (header, codec, key), found ${lines.length}`);
  const [header, codec, key] = lines as [string, string, string];
  if (header.trim() !== PSK_HEADER) throw new PskFileError(file, `first line must be ${PSK_HEADER}`);
  if (codec.trim() !== PSK_CODEC) throw new PskFileError(file, `second line must be ${PSK_CODEC} (the only codec supported)`);
  if (!/^[0-9a-fA-F]{64}$/.test(key.trim())) throw new PskFileError(file, 'third line must be 64 hex characters (32 bytes)');
  return new TextEncoder().encode(`${PSK_HEADER}\n${PSK_CODEC}\n${key.trim().toLowerCase()}`);
}

/** Reads and validates a swarm key file (a regular file of at most MAX_PSK_BYTES); warns when others may read it. */
export async function loadPsk(file: string, options: KeyFileOptions = {}): Promise<Uint8Array> {
  const read = await readSecretFile(file, MAX_PSK_BYTES, (reason, cause) => new PskFileError(file, reason, { cause }));
  if (!read) throw new PskFileError(file, 'cannot read file (ENOENT)');
  const psk = parsePsk(read.bytes, file);
  if (read.readableByOthers) (options.logger ?? silentLogger).forComponent('corolla:swarm').error(`swarm key file ${file} is readable by others; chmod 600 it`);
  return psk;
}

/** Writes a new swarm key file with mode 0600 (parent directories created); never replaces an existing file. */
export async function savePsk(file: string, psk: Uint8Array): Promise<void> {
  parsePsk(psk, file);
  try {
    await createSecretFile(file, psk);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new PskFileError(file, code === 'EEXIST' ? 'file exists; refusing to overwrite a swarm key' : `cannot write file (${code ?? 'unknown error'})`, { cause });
  }
}
