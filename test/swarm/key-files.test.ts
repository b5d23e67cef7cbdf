/** Key files under attack or race: special files, loose modes, concurrent creation, overwriting a swarm key. */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadOrCreateIdentity } from '../../src/swarm/identity.js';
import { generatePsk, loadPsk, savePsk } from '../../src/swarm/psk.js';
import { IdentityFileError, PskFileError } from '../../src/swarm/errors.js';
import { lineLogger } from '../../src/util/logger.js';
import { tempDir } from '../support/files.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('corolla-keyfiles-');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const within = <T>(promise: Promise<T>, ms = 3000): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms (hang)`)), ms))]);

describe('identity and swarm key readers refuse special files', () => {
  it('/dev/zero is a clear error, not an endless read', async () => {
    const identity = await within(loadOrCreateIdentity('/dev/zero').then(() => undefined, (e: unknown) => e));
    expect(identity).toBeInstanceOf(IdentityFileError);
    expect((identity as Error).message).toMatch(/not a regular file/);
    const psk = await within(loadPsk('/dev/zero').then(() => undefined, (e: unknown) => e));
    expect(psk).toBeInstanceOf(PskFileError);
    expect((psk as Error).message).toMatch(/not a regular file/);
  });

  it('a FIFO with no writer is a clear error, not a hang', async () => {
    const fifo = join(dir, 'key.fifo');
    execFileSync('mkfifo', [fifo]);
    const identity = await within(loadOrCreateIdentity(fifo).then(() => undefined, (e: unknown) => e));
    expect(identity).toBeInstanceOf(IdentityFileError);
    expect((identity as Error).message).toMatch(/not a regular file/);
    const psk = await within(loadPsk(fifo).then(() => undefined, (e: unknown) => e));
    expect(psk).toBeInstanceOf(PskFileError);
    expect((psk as Error).message).toMatch(/not a regular file/);
  });

  it('an oversized swarm key file is refused before it is read', async () => {
    const file = join(dir, 'big.key');
    await writeFile(file, new Uint8Array(2 * 1024 * 1024));
    await expect(loadPsk(file)).rejects.toThrow(/too large/);
  });
});

describe('key files readable by others', () => {
  it('loading warns through the injected logger and flags the identity', async () => {
    const lines: string[] = [];
    const logger = lineLogger((line) => lines.push(line));
    const idFile = join(dir, 'loose.key');
    await loadOrCreateIdentity(idFile);
    await chmod(idFile, 0o644);
    const identity = await loadOrCreateIdentity(idFile, { logger });
    expect(identity.readableByOthers).toBe(true);
    const pskFile = join(dir, 'loose.psk');
    await savePsk(pskFile, generatePsk());
    await chmod(pskFile, 0o640);
    await loadPsk(pskFile, { logger });
    expect(lines.filter((line) => /readable by others/.test(line))).toHaveLength(2);

    const quiet: string[] = [];
    await chmod(idFile, 0o600);
    expect((await loadOrCreateIdentity(idFile, { logger: lineLogger((line) => quiet.push(line)) })).readableByOthers).toBe(false);
    expect(quiet).toEqual([]);
  });
});

describe('creating keys', () => {
  it('two concurrent starts on a fresh path end up with the same key', async () => {
    for (let round = 0; round < 5; round++) {
      const file = join(dir, `race-${round}`, 'node.key');
      const results = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateIdentity(file)));
      const ids = new Set(results.map((result) => result.peerId));
      expect(ids.size).toBe(1);
      expect(results.filter((result) => result.created)).toHaveLength(1);
      const again = await loadOrCreateIdentity(file);
      expect(again.peerId).toBe(results[0]!.peerId);
    }
  });

  it('savePsk refuses to overwrite an existing file', async () => {
    const file = join(dir, 'swarm.key');
    const first = generatePsk();
    await savePsk(file, first);
    const error = await savePsk(file, generatePsk()).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(PskFileError);
    expect((error as Error).message).toMatch(/exists/);
    expect(new Uint8Array(await readFile(file))).toEqual(first);
  });
});
