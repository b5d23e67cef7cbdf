/** Ethereum accounts: raw keys, v3 keystores (read and written), the order of sources, and keys never leaking. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { privateKeyToAccount } from 'viem/accounts';
import { InvalidKeyError } from '../../src/chain/errors.js';
import { accountFromPrivateKey, createKeystoreFile, decryptKeystore, encryptKeystore, loadAccount, readKeystoreFile } from '../../src/chain/keys.js';
import { keySourcesFrom } from '../../src/cli/account.js';
import { tempDir } from '../support/files.js';

/** The Web3 Secret Storage definition's scrypt test vector (ethereum.org; password "testpassword"). */
const SPEC_VECTOR = {
  crypto: {
    cipher: 'aes-128-ctr',
    cipherparams: { iv: '83dbcc02d8ccb40e466191a123791e0e' },
    ciphertext: 'd172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c',
    kdf: 'scrypt',
    kdfparams: { dklen: 32, n: 262144, p: 8, r: 1, salt: 'ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19' },
    mac: '2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097',
  },
  id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
  version: 3,
};
const SPEC_KEY = '0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d';
/** The same key under the spec's PBKDF2-SHA256 vector. */
const SPEC_PBKDF2_VECTOR = {
  crypto: {
    cipher: 'aes-128-ctr',
    cipherparams: { iv: '6087dab2f9fdbbfaddc31a909735c1e6' },
    ciphertext: '5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46',
    kdf: 'pbkdf2',
    kdfparams: { c: 262144, dklen: 32, prf: 'hmac-sha256', salt: 'ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd' },
    mac: '517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2',
  },
  id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
  version: 3,
};
/** Cheap scrypt parameters for round trips (geth's "light" cost is n 4096, r 8, p 6). */
const LIGHT = { n: 4096, r: 8, p: 1 };
const KEY_A = '0x' + '11'.repeat(32);
const KEY_B = '0x' + '22'.repeat(32);

const dir = tempDir('corolla-keys-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function keystoreOf(key: string, password: string): Promise<string> {
  const file = path.join(dir, `ks-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, JSON.stringify(await encryptKeystore(key as `0x${string}`, password, LIGHT)));
  return file;
}

describe('keystores (Web3 Secret Storage v3)', () => {
  it('decrypts the spec test vectors (scrypt and pbkdf2)', async () => {
    expect(await decryptKeystore(SPEC_VECTOR, 'testpassword')).toBe(SPEC_KEY);
    expect(await decryptKeystore(SPEC_PBKDF2_VECTOR, 'testpassword')).toBe(SPEC_KEY);
  }, 60_000); // the spec's costs: 8 × 32 MiB of scrypt in JS (OpenSSL refuses r = 1 with N = 2^18), 2^18 PBKDF2 rounds

  it('writes keystores in the format it reads back, one fresh salt and iv each', async () => {
    const first = await encryptKeystore(KEY_A as `0x${string}`, 'pw', LIGHT);
    const second = await encryptKeystore(KEY_A as `0x${string}`, 'pw', LIGHT);
    expect(first).toMatchObject({ version: 3, address: privateKeyToAccount(KEY_A as `0x${string}`).address.slice(2).toLowerCase(), crypto: { cipher: 'aes-128-ctr', kdf: 'scrypt', kdfparams: { dklen: 32, ...LIGHT } } });
    expect(second.crypto.ciphertext).not.toBe(first.crypto.ciphertext);
    expect(await decryptKeystore(first, 'pw')).toBe(KEY_A);
    expect(await decryptKeystore(JSON.parse(JSON.stringify(second)), 'pw')).toBe(KEY_A);
  });

  it('creates a keystore file (mode 0600, never over an existing one) whose account reads back', async () => {
    const file = path.join(dir, 'new.json');
    const account = await createKeystoreFile(file, 'secret', LIGHT);
    expect((fs.statSync(file).mode & 0o777).toString(8)).toBe('600');
    expect((await readKeystoreFile(file, 'secret')).address).toBe(account.address);
    await expect(createKeystoreFile(file, 'secret', LIGHT)).rejects.toThrow(/exists already/);
  });

  it('refuses a wrong password, a tampered file and hostile parameters with InvalidKeyError', async () => {
    const keystore = await encryptKeystore(KEY_A as `0x${string}`, 'right', LIGHT);
    await expect(decryptKeystore(keystore, 'wrong')).rejects.toThrow(InvalidKeyError);
    await expect(decryptKeystore(keystore, 'wrong')).rejects.toThrow(/wrong keystore password/);
    const flipped = keystore.crypto.ciphertext.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    await expect(decryptKeystore({ ...keystore, crypto: { ...keystore.crypto, ciphertext: flipped } }, 'right')).rejects.toThrow(/wrong keystore password/);
    const huge = { ...keystore, crypto: { ...keystore.crypto, kdfparams: { ...keystore.crypto.kdfparams, n: 2 ** 30 } } };
    await expect(decryptKeystore(huge, 'right')).rejects.toThrow(/too much memory/);
    await expect(decryptKeystore({ ...keystore, version: 1 }, 'right')).rejects.toThrow(/version 3/);
  });
});

describe('accounts', () => {
  it('takes the first source given: --private-key, COROLLA_PRIVATE_KEY, then the keystore', async () => {
    const file = await keystoreOf(KEY_B, 'pw');
    const env = { COROLLA_PRIVATE_KEY: KEY_A, COROLLA_KEYSTORE: file, COROLLA_KEYSTORE_PASSWORD: 'pw' };
    const addressOf = async (sources: ReturnType<typeof keySourcesFrom>) => (await loadAccount(sources))?.address;
    const flagKey = '0x' + '33'.repeat(32);
    expect(await addressOf(keySourcesFrom({ 'private-key': flagKey }, env))).toBe(privateKeyToAccount(flagKey as `0x${string}`).address);
    expect(await addressOf(keySourcesFrom({}, env))).toBe(privateKeyToAccount(KEY_A as `0x${string}`).address);
    expect(await addressOf(keySourcesFrom({}, { ...env, COROLLA_PRIVATE_KEY: '' }))).toBe(privateKeyToAccount(KEY_B as `0x${string}`).address);
    // the password file flag wins over the variable
    const passwordFile = path.join(dir, 'password');
    fs.writeFileSync(passwordFile, 'pw\n');
    expect(await addressOf(keySourcesFrom({ keystore: file, 'keystore-password-file': passwordFile }, { COROLLA_KEYSTORE_PASSWORD: 'wrong' }))).toBe(privateKeyToAccount(KEY_B as `0x${string}`).address);
    await expect(loadAccount(keySourcesFrom({ keystore: file }, {}))).rejects.toThrow(/needs a password/);
    expect(await loadAccount(keySourcesFrom({}, {}))).toBeUndefined();
  });

  it('accepts a key with or without 0x', () => {
    expect(accountFromPrivateKey(KEY_A.slice(2)).address).toBe(privateKeyToAccount(KEY_A as `0x${string}`).address);
  });

  it('never quotes an invalid key in its error (message or causes)', async () => {
    const zero = '0x' + '00'.repeat(32); // 32 bytes of hex, but not a valid secp256k1 key
    const overOrder = '0x' + 'ff'.repeat(32);
    const short = '0x' + 'ab12cd34'.repeat(7);
    const notHex = '0x' + 'zz'.repeat(32);
    for (const key of [zero, overOrder, short, notHex]) {
      let error: unknown;
      try {
        await loadAccount({ privateKey: key });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidKeyError);
      const text = `${(error as Error).message} ${String((error as Error).cause ?? '')} ${(error as Error).stack}`;
      expect(text).not.toContain(key.slice(2));
      expect(text).not.toContain(key.slice(2, 18));
    }
    // nor a wrong keystore password, nor the key inside a keystore
    const file = await keystoreOf(KEY_A, 'right');
    const error = (await readKeystoreFile(file, 'hunter2-wrong').catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(InvalidKeyError);
    expect(`${error.message} ${error.stack}`).not.toMatch(/hunter2|1111111111/);
  });
});
