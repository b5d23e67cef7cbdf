/** API keys: the keys file (good, bad, duplicate, sha256 form) and how a request's Authorization header is resolved. */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadApiKeys, parseApiKeys, type ApiKeys } from '../../src/gateway/auth/api-keys.js';
import { authenticate } from '../../src/gateway/auth/authenticate.js';
import { ApiKeysFileError } from '../../src/gateway/auth/errors.js';
import { SharedStateError, UnauthorizedError } from '../../src/gateway/errors.js';
import { MemorySharedState } from '../../src/gateway/state/memory.js';
import type { SharedState } from '../../src/gateway/types.js';
import { tempDir } from '../support/files.js';

const ALICE_KEY = 'sk-alice-0123456789abcdef';
const BOB_KEY = 'sk-bob-fedcba9876543210';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const dir = tempDir('corolla-auth-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function writeKeysFile(contents: unknown): string {
  const file = path.join(dir, `keys-${++fileCount}.json`);
  fs.writeFileSync(file, typeof contents === 'string' ? contents : JSON.stringify(contents));
  return file;
}

async function fileError(contents: unknown): Promise<ApiKeysFileError> {
  const file = writeKeysFile(contents);
  const error = await loadApiKeys(file).then(
    () => expect.fail('expected the keys file to be rejected'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiKeysFileError);
  expect((error as Error).message).toContain(file);
  return error as ApiKeysFileError;
}

const GOOD_FILE = {
  keys: [
    { id: 'alice', key: ALICE_KEY, requestsPerMinute: 60, tokensPerMinute: 10_000 },
    { id: 'bob', sha256: sha256(BOB_KEY).toUpperCase(), admin: true },
  ],
};

describe('loadApiKeys', () => {
  it('reads keys in the clear and as SHA-256, with their limits and admin flag', async () => {
    const keys = await loadApiKeys(writeKeysFile(GOOD_FILE));
    expect(keys.size).toBe(2);
    expect(keys.find(ALICE_KEY)).toEqual({ id: 'alice', limits: { requestsPerMinute: 60, tokensPerMinute: 10_000 }, admin: false });
    expect(keys.find(BOB_KEY)).toEqual({ id: 'bob', limits: { requestsPerMinute: undefined, tokensPerMinute: undefined }, admin: true });
    expect(keys.find('sk-nobody-0123456789abcdef')).toBeUndefined();
    expect(keys.find(ALICE_KEY.slice(0, -1))).toBeUndefined();
    expect(keys.find(sha256(BOB_KEY))).toBeUndefined(); // the hash is not the key
    expect(keys.find('')).toBeUndefined();
  });

  it('names the file, the entry and the fault, and never quotes a key', async () => {
    const shortKey = await fileError({ keys: [{ id: 'alice', key: ALICE_KEY }, { id: 'carol', key: 'sk-short-secret' }] });
    expect(shortKey.message).toContain('keys[1].key');
    expect(shortKey.message).toContain('"carol"');
    expect(shortKey.message).not.toContain('sk-short-secret');

    const both = await fileError({ keys: [{ id: 'dave', key: ALICE_KEY, sha256: sha256(ALICE_KEY) }] });
    expect(both.message).toMatch(/keys\[0\].*exactly one of "key" and "sha256"/);
    expect(both.message).not.toContain(ALICE_KEY);

    const neither = await fileError({ keys: [{ id: 'erin' }] });
    expect(neither.message).toMatch(/keys\[0\].*exactly one of "key" and "sha256"/);

    expect((await fileError({ keys: [{ id: 'frank', sha256: 'abc123' }] })).message).toMatch(/keys\[0\]\.sha256 must be 64 hexadecimal digits/);
    expect((await fileError({ keys: [{ id: 'gina', key: ALICE_KEY, requestsPerMinute: 0 }] })).message).toMatch(/keys\[0\]\.requestsPerMinute must be in 1\.\./);
    expect((await fileError({ keys: [{ id: 'hal', key: ALICE_KEY, tokensPerMinute: 1.5 }] })).message).toMatch(/keys\[0\]\.tokensPerMinute must be an integer/);
    expect((await fileError({ keys: [{ id: 'ivy', key: ALICE_KEY, admin: 'yes' }] })).message).toMatch(/keys\[0\]\.admin must be true or false/);
    expect((await fileError({ keys: [{ id: 'jo', key: ALICE_KEY, requestPerMinute: 5 }] })).message).toMatch(/unknown field "requestPerMinute"/);
    expect((await fileError({ keys: [{ id: 'has space', key: ALICE_KEY }] })).message).toMatch(/keys\[0\]\.id has an invalid format/);
    expect((await fileError({ keys: [] })).message).toMatch(/at least one key/);
    expect((await fileError({ key: [] })).message).toMatch(/unknown field "key"|missing field "keys"/);
    expect((await fileError('{"keys": [')).message).toMatch(/not valid JSON/);
  });

  it('rejects duplicate ids, and the same key under two ids (in the clear or hashed)', async () => {
    const sameId = await fileError({ keys: [{ id: 'alice', key: ALICE_KEY }, { id: 'alice', key: BOB_KEY }] });
    expect(sameId.message).toMatch(/keys\[1\] repeats the id "alice" of keys\[0\]/);
    const sameKey = await fileError({ keys: [{ id: 'alice', key: ALICE_KEY }, { id: 'bob', sha256: sha256(ALICE_KEY) }] });
    expect(sameKey.message).toMatch(/keys\[1\] \("bob"\) has the same key as keys\[0\] \("alice"\)/);
    expect(sameKey.message).not.toContain(ALICE_KEY);
  });

  it('says when the file cannot be read', async () => {
    const missing = path.join(dir, 'missing.json');
    const error = await loadApiKeys(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiKeysFileError);
    expect((error as Error).message).toContain(missing);
    expect((error as Error).message).toContain('ENOENT');
  });
});

describe('authenticate', () => {
  const keys: ApiKeys = parseApiKeys(GOOD_FILE, 'keys.json');
  const state = new MemorySharedState();
  const options = { keys, state, clientAddress: '203.0.113.7' };

  async function unauthorized(header: string | undefined, s: SharedState = state): Promise<UnauthorizedError> {
    const error = await authenticate(header, { ...options, state: s }).then(
      () => expect.fail('expected a 401'),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect((error as UnauthorizedError).httpStatus).toBe(401);
    return error as UnauthorizedError;
  }

  it('lets everyone in as their address when no keys are configured', async () => {
    for (const header of [undefined, 'Bearer whatever', 'garbage']) {
      expect(await authenticate(header, { keys: undefined, state, clientAddress: '203.0.113.7' })).toEqual({
        subject: '203.0.113.7',
        keyId: null,
        limits: {},
        admin: false,
      });
    }
  });

  it('resolves a known key to its id, limits and admin flag', async () => {
    expect(await authenticate(`Bearer ${ALICE_KEY}`, options)).toEqual({
      subject: 'alice',
      keyId: 'alice',
      limits: { requestsPerMinute: 60, tokensPerMinute: 10_000 },
      admin: false,
    });
    const bob = await authenticate(`bearer   ${BOB_KEY} `, options);
    expect(bob.keyId).toBe('bob');
    expect(bob.admin).toBe(true);
  });

  it('refuses a missing, malformed or unknown key without quoting it', async () => {
    expect((await unauthorized(undefined)).message).toMatch(/API key is required/);
    expect((await unauthorized('')).message).toMatch(/API key is required/);
    expect((await unauthorized(`Basic ${ALICE_KEY}`)).message).not.toContain(ALICE_KEY);
    expect((await unauthorized(ALICE_KEY)).message).toMatch(/Bearer <key>/);
    expect((await unauthorized(`Bearer ${ALICE_KEY} extra`)).message).toMatch(/Bearer <key>/);
    const unknown = await unauthorized('Bearer sk-unknown-0123456789abcdef');
    expect(unknown.message).toBe('invalid API key');
  });

  it('refuses a revoked key, and only that key', async () => {
    const own = new MemorySharedState();
    await own.revokeKey('alice');
    expect((await unauthorized(`Bearer ${ALICE_KEY}`, own)).message).toMatch(/"alice" has been revoked/);
    expect((await authenticate(`Bearer ${BOB_KEY}`, { ...options, state: own })).keyId).toBe('bob');
  });

  it('passes on a shared-state failure (a 503, not a 401)', async () => {
    const broken = new MemorySharedState();
    broken.isRevoked = () => Promise.reject(new SharedStateError('shared state is unavailable'));
    await expect(authenticate(`Bearer ${ALICE_KEY}`, { ...options, state: broken })).rejects.toBeInstanceOf(SharedStateError);
  });
});
