import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { loadOrCreateIdentity } from '../../src/swarm/identity.js';
import { generatePsk, loadPsk, parsePsk, savePsk } from '../../src/swarm/psk.js';
import { IdentityFileError, PskFileError } from '../../src/swarm/errors.js';
import { CorollaError } from '../../src/errors.js';
import { tempDir } from '../support/files.js';

let dir: string;
beforeAll(async () => {
  dir = tempDir('corolla-identity-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('identity file', () => {
  it('creates a key (parent dirs, mode 0600) and loads the same peer id next time', async () => {
    const file = join(dir, 'a', 'b', 'node.key');
    const first = await loadOrCreateIdentity(file);
    expect(first.created).toBe(true);
    expect(first.peerId).toMatch(/^12D3KooW/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateIdentity(file);
    expect(second.created).toBe(false);
    expect(second.peerId).toBe(first.peerId);
    expect(second.privateKey.equals(first.privateKey)).toBe(true);
    expect(new Uint8Array(await readFile(file))).toEqual(privateKeyToProtobuf(first.privateKey));
  });

  it('a corrupt file is a typed error and is left untouched', async () => {
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['garbage.key', new TextEncoder().encode('definitely not a key'), /not a libp2p protobuf-encoded private key/],
      ['empty.key', new Uint8Array(0), /empty/],
      ['truncated.key', privateKeyToProtobuf(await generateKeyPair('Ed25519')).subarray(0, 20), /not a libp2p protobuf/],
      ['huge.key', new Uint8Array(10_000), /too large/],
      ['secp.key', privateKeyToProtobuf(await generateKeyPair('secp256k1')), /secp256k1 key; Corolla identities are Ed25519/],
    ];
    for (const [name, bytes, reason] of cases) {
      const file = join(dir, name);
      await writeFile(file, bytes);
      const error = await loadOrCreateIdentity(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(IdentityFileError);
      expect(error).toBeInstanceOf(CorollaError);
      expect((error as IdentityFileError).code).toBe('IDENTITY_FILE_INVALID');
      expect((error as Error).message).toMatch(reason);
      expect(new Uint8Array(await readFile(file))).toEqual(bytes);
    }
  });

  it('an unreadable path is a typed error', async () => {
    await expect(loadOrCreateIdentity(dir)).rejects.toBeInstanceOf(IdentityFileError); // a directory
  });
});

describe('swarm key (PSK) file', () => {
  it('generates, saves (0600), loads and validates the /key/swarm/psk/1.0.0/ format', async () => {
    const psk = generatePsk();
    const text = new TextDecoder().decode(psk);
    expect(text).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/);
    const file = join(dir, 'psk', 'swarm.key');
    await savePsk(file, psk);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(new TextDecoder().decode(await loadPsk(file))).toBe(text.trim());
    expect(generatePsk()).not.toEqual(psk);
  });

  it('rejects malformed keys with PskFileError', async () => {
    const bad = ['', 'hello', '/key/swarm/psk/1.0.0/\n/base64/\n' + 'a'.repeat(64), '/key/swarm/psk/1.0.0/\n/base16/\n' + 'a'.repeat(63), '/key/swarm/psk/2.0.0/\n/base16/\n' + 'a'.repeat(64)];
    for (const text of bad) expect(() => parsePsk(new TextEncoder().encode(text))).toThrow(PskFileError);
    await expect(loadPsk(join(dir, 'missing.key'))).rejects.toBeInstanceOf(PskFileError);
  });
});
