/**
 * Pre-shared keys for private swarms (@libp2p/pnet). The file format is the one go-ipfs/kubo and js-libp2p use:
 *
 *   /key/swarm/psk/1.0.0/
 *   /base16/
 *   <64 hex characters = 32 random bytes>
 *
 * Peers without the same key cannot complete a connection with a node that has one.
 */
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { PskFileError } from './errors.js';
import { writePrivateFile } from './identity.js';

const PSK_HEADER = '/key/swarm/psk/1.0.0/';
const PSK_CODEC = '/base16/';

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

/** Reads and validates a swarm key file. */
export async function loadPsk(file: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new PskFileError(file, `cannot read file (${(cause as NodeJS.ErrnoException).code ?? 'unknown error'})`, { cause });
  }
  if (bytes.byteLength > 1024) throw new PskFileError(file, 'file is too large to be a swarm key');
  return parsePsk(bytes, file);
}

/** Writes a swarm key file with mode 0600 (parent directories created). */
export async function savePsk(file: string, psk: Uint8Array): Promise<void> {
  parsePsk(psk, file);
  await writePrivateFile(file, psk);
}
