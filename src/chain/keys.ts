/**
 * A server's Ethereum account: a raw private key, or an encrypted keystore file in the Web3 Secret Storage v3
 * format that geth and ethers write (scrypt or pbkdf2 key derivation, aes-128-ctr, keccak256 MAC). Implemented on
 * node:crypto so no key ever passes through another dependency.
 *
 * A key is never printed, logged or quoted in an error: InvalidKeyError messages name the source, never the value,
 * and carry no cause that could hold it.
 */
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes, randomUUID, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { scryptAsync as nobleScrypt } from '@noble/hashes/scrypt.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import type { Hex, PrivateKeyAccount } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { InvalidKeyError } from './errors.js';

/** scrypt cost geth calls "standard" (256 MiB, about a second): what `corolla keys new` writes. */
export const STANDARD_SCRYPT = { n: 262_144, r: 8, p: 1 } as const;
const KEYSTORE_VERSION = 3;
const DERIVED_KEY_BYTES = 32;
/** Bounds on what a keystore file may ask of us (a hostile file must not exhaust memory or CPU). */
const MAX_SCRYPT_MEMORY_BYTES = 1024 * 1024 * 1024;
const MAX_PBKDF2_ROUNDS = 10_000_000;
const MAX_KEYSTORE_FILE_BYTES = 64 * 1024;

export interface ScryptParams {
  readonly n: number;
  readonly r: number;
  readonly p: number;
}

/** The Web3 Secret Storage v3 JSON (the fields we read and write). */
export interface KeystoreV3 {
  readonly version: 3;
  readonly id: string;
  /** Lowercase hex without 0x, as geth writes it. */
  readonly address?: string;
  readonly crypto: {
    readonly cipher: 'aes-128-ctr';
    readonly cipherparams: { readonly iv: string };
    readonly ciphertext: string;
    readonly kdf: 'scrypt' | 'pbkdf2';
    readonly kdfparams: Record<string, unknown>;
    readonly mac: string;
  };
}

/** Where an account comes from, first match wins: a raw key, then a keystore file with its password. */
export interface KeySources {
  /** 0x + 64 hex digits (0x optional). */
  readonly privateKey?: string;
  readonly keystore?: {
    readonly file: string;
    /** The password itself, or a file holding it (its trailing newline is dropped). */
    readonly password?: string;
    readonly passwordFile?: string;
  };
}

/** A private key (0x optional) as an account. `source` names where it came from, for the error message. */
export function accountFromPrivateKey(privateKey: string, source = 'the private key'): PrivateKeyAccount {
  const hex = (privateKey.trim().startsWith('0x') ? privateKey.trim() : `0x${privateKey.trim()}`) as Hex;
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) throw new InvalidKeyError(`${source} must be 32 bytes as 64 hex digits (0x optional)`);
  try {
    return privateKeyToAccount(hex);
  } catch {
    // no cause: the library's message may quote the key
    throw new InvalidKeyError(`${source} is not a valid secp256k1 private key`);
  }
}

/** The account from the first source given, or undefined when none is. */
export async function loadAccount(sources: KeySources): Promise<PrivateKeyAccount | undefined> {
  if (sources.privateKey !== undefined) return accountFromPrivateKey(sources.privateKey);
  const keystore = sources.keystore;
  if (keystore === undefined) return undefined;
  return readKeystoreFile(keystore.file, await keystorePassword(keystore));
}

/** The password given, or read from the password file (without its trailing newline). */
export async function keystorePassword(source: { readonly file: string; readonly password?: string; readonly passwordFile?: string }): Promise<string> {
  if (source.password !== undefined) return source.password;
  if (source.passwordFile === undefined) throw new InvalidKeyError(`keystore ${source.file} needs a password (a password file, or the password in the environment)`);
  try {
    return (await readFile(source.passwordFile, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    throw new InvalidKeyError(`cannot read the password file ${source.passwordFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

export async function readKeystoreFile(file: string, password: string): Promise<PrivateKeyAccount> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidKeyError(`cannot read the keystore ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text.length > MAX_KEYSTORE_FILE_BYTES) throw new InvalidKeyError(`keystore ${file} is too large to be a keystore`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InvalidKeyError(`keystore ${file} is not JSON`);
  }
  return accountFromPrivateKey(await decryptKeystore(json, password), `the key in keystore ${file}`);
}

/** Decrypts a v3 keystore: the private key (0x hex). Throws InvalidKeyError on a wrong password or a bad file. */
export async function decryptKeystore(keystore: unknown, password: string): Promise<Hex> {
  const crypto = (keystore as { crypto?: unknown; Crypto?: unknown } | null)?.crypto ?? (keystore as { Crypto?: unknown } | null)?.Crypto;
  if ((keystore as { version?: unknown } | null)?.version !== KEYSTORE_VERSION || typeof crypto !== 'object' || crypto === null) {
    throw new InvalidKeyError('not a version 3 keystore');
  }
  const c = crypto as Record<string, unknown>;
  if (c.cipher !== 'aes-128-ctr') throw new InvalidKeyError(`unsupported keystore cipher ${JSON.stringify(c.cipher)?.slice(0, 40)}`);
  const iv = hexField((c.cipherparams as { iv?: unknown } | undefined)?.iv, 'cipherparams.iv', 16);
  const ciphertext = hexField(c.ciphertext, 'ciphertext');
  const mac = hexField(c.mac, 'mac', 32);
  const derived = await deriveKey(c.kdf, c.kdfparams, password);
  const expected = keccak_256(concat(derived.subarray(16, 32), ciphertext));
  if (!timingSafeEqual(expected, mac)) throw new InvalidKeyError('wrong keystore password (or a corrupted keystore)');
  const decipher = createDecipheriv('aes-128-ctr', derived.subarray(0, 16), iv);
  const key = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  return `0x${key.toString('hex')}`;
}

/** Encrypts `privateKey` into a v3 keystore (scrypt, aes-128-ctr), as geth writes it. */
export async function encryptKeystore(privateKey: Hex, password: string, params: ScryptParams = STANDARD_SCRYPT): Promise<KeystoreV3> {
  const account = accountFromPrivateKey(privateKey);
  const salt = randomBytes(32);
  const iv = randomBytes(16);
  const derived = await scryptKey(password, salt, params);
  const cipher = createCipheriv('aes-128-ctr', derived.subarray(0, 16), iv);
  const ciphertext = Buffer.concat([cipher.update(Buffer.from(privateKey.replace(/^0x/, ''), 'hex')), cipher.final()]);
  const mac = Buffer.from(keccak_256(concat(derived.subarray(16, 32), ciphertext)));
  return {
    version: KEYSTORE_VERSION,
    id: randomUUID(),
    address: account.address.slice(2).toLowerCase(),
    crypto: {
      cipher: 'aes-128-ctr',
      cipherparams: { iv: iv.toString('hex') },
      ciphertext: ciphertext.toString('hex'),
      kdf: 'scrypt',
      kdfparams: { dklen: DERIVED_KEY_BYTES, n: params.n, r: params.r, p: params.p, salt: salt.toString('hex') },
      mac: mac.toString('hex'),
    },
  };
}

/** Creates a new random key, writes it encrypted to `file` (mode 0600, never over an existing file): its account. */
export async function createKeystoreFile(file: string, password: string, params: ScryptParams = STANDARD_SCRYPT): Promise<PrivateKeyAccount> {
  if (password.length === 0) throw new InvalidKeyError('the keystore password must not be empty');
  const privateKey = generatePrivateKey();
  const keystore = await encryptKeystore(privateKey, password, params);
  try {
    await writeFile(file, JSON.stringify(keystore, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InvalidKeyError(code === 'EEXIST' ? `keystore ${file} exists already` : `cannot write the keystore ${file}: ${code ?? 'error'}`);
  }
  return privateKeyToAccount(privateKey);
}

async function deriveKey(kdf: unknown, kdfparams: unknown, password: string): Promise<Buffer> {
  const p = (kdfparams ?? {}) as Record<string, unknown>;
  if (p.dklen !== DERIVED_KEY_BYTES) throw new InvalidKeyError(`keystore kdfparams.dklen must be ${DERIVED_KEY_BYTES}`);
  const salt = hexField(p.salt, 'kdfparams.salt');
  if (kdf === 'scrypt') {
    const n = p.n, r = p.r, pp = p.p;
    if (!isCount(n) || (n & (n - 1)) !== 0 || n < 2 || !isCount(r) || !isCount(pp)) throw new InvalidKeyError('keystore scrypt parameters must be positive integers (n a power of two)');
    if (128 * n * r > MAX_SCRYPT_MEMORY_BYTES || r * pp >= 2 ** 30) throw new InvalidKeyError('keystore scrypt parameters ask for too much memory');
    return scryptKey(password, salt, { n, r, p: pp });
  }
  if (kdf === 'pbkdf2') {
    if (p.prf !== 'hmac-sha256') throw new InvalidKeyError('keystore pbkdf2 must use hmac-sha256');
    if (!isCount(p.c) || p.c > MAX_PBKDF2_ROUNDS) throw new InvalidKeyError('keystore pbkdf2 round count is out of range');
    const rounds = p.c;
    return new Promise((resolve, reject) =>
      pbkdf2(password, salt, rounds, DERIVED_KEY_BYTES, 'sha256', (error, key) => (error ? reject(new InvalidKeyError('keystore key derivation failed')) : resolve(key))),
    );
  }
  throw new InvalidKeyError(`unsupported keystore kdf ${JSON.stringify(kdf)?.slice(0, 40)}`);
}

async function scryptKey(password: string, salt: Uint8Array, { n, r, p }: ScryptParams): Promise<Buffer> {
  // OpenSSL refuses N ≥ 2^(16·r) (RFC 7914's bound), which the Web3 Secret Storage spec's own vector (r = 1,
  // N = 2^18) breaks: such files go through @noble/hashes' scrypt; everything geth and ethers write stays native.
  if (Math.log2(n) >= 16 * r) return Buffer.from(await nobleScrypt(password, salt, { N: n, r, p, dkLen: DERIVED_KEY_BYTES, maxmem: MAX_SCRYPT_MEMORY_BYTES + 1024 * 1024 }));
  // node's default maxmem (32 MiB) is below geth's standard cost; allow what these parameters need
  const options: ScryptOptions = { N: n, r, p, maxmem: 128 * n * r + 128 * r * p + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    try {
      scrypt(password, salt, DERIVED_KEY_BYTES, options, (error, key) => (error ? reject(new InvalidKeyError('keystore key derivation failed')) : resolve(key)));
    } catch {
      reject(new InvalidKeyError('keystore scrypt parameters are not supported'));
    }
  });
}

function hexField(value: unknown, name: string, bytes?: number): Buffer {
  const text = typeof value === 'string' ? value.replace(/^0x/, '') : '';
  if (!/^([0-9a-fA-F]{2})+$/.test(text) || (bytes !== undefined && text.length !== 2 * bytes)) {
    throw new InvalidKeyError(`keystore ${name} must be ${bytes !== undefined ? `${bytes} bytes of ` : ''}hex`);
  }
  return Buffer.from(text, 'hex');
}

const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 1;
const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => Buffer.concat([a, b]);
