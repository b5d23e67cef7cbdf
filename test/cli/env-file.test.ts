/**
 * `.env` files: read before the flags (from the working directory, or --env-file); flags win over the environment,
 * which wins over the file. Checked through `corolla keys address` / `keys new`, which print an address only.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { privateKeyToAccount } from 'viem/accounts';
import { decryptKeystore } from '../../src/chain/keys.js';
import { loadEnvFile, takeEnvFileFlag } from '../../src/cli/env-file.js';
import { UsageError } from '../../src/cli/errors.js';
import { COROLLA_BIN } from '../../src/cli/processes.js';
import { tempDir } from '../support/files.js';

const run = promisify(execFile);
const dir = tempDir('corolla-env-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const key = (byte: string) => `0x${byte.repeat(32)}` as `0x${string}`;
const addressOf = (k: `0x${string}`) => privateKeyToAccount(k).address;

/** Runs `corolla …` in `cwd` with exactly `env` (plus PATH): no COROLLA_* leaks in from the test's environment. */
async function corolla(args: string[], cwd: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [COROLLA_BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('env files (unit)', () => {
  it('takes --env-file out of the arguments, in both spellings', () => {
    expect(takeEnvFileFlag(['--model', 'm', '--dotenv', 'a.env'])).toEqual({ argv: ['--model', 'm'], envFile: 'a.env' });
    expect(takeEnvFileFlag(['--dotenv=b.env', '--x'])).toEqual({ argv: ['--x'], envFile: 'b.env' });
    expect(takeEnvFileFlag(['--x'])).toEqual({ argv: ['--x'] });
    expect(() => takeEnvFileFlag(['--dotenv'])).toThrow(UsageError);
  });

  it('sets only what the environment lacks (an empty value sets nothing), and names what it set', () => {
    const cwd = path.join(dir, 'unit');
    fs.mkdirSync(cwd);
    fs.writeFileSync(path.join(cwd, '.env'), '# comment\nCOROLLA_RPC_URL=http://file\nCOROLLA_REGISTRY="0xfile"\nDATABASE_URL=postgres://file\nPORT=\n');
    const env: NodeJS.ProcessEnv = { COROLLA_RPC_URL: 'http://env' };
    expect(loadEnvFile(env, { cwd }).sort()).toEqual(['COROLLA_REGISTRY', 'DATABASE_URL']);
    expect(env).toEqual({ COROLLA_RPC_URL: 'http://env', COROLLA_REGISTRY: '0xfile', DATABASE_URL: 'postgres://file' });
    // no ./.env is fine; a named file that is missing is an error
    expect(loadEnvFile({}, { cwd: dir })).toEqual([]);
    expect(() => loadEnvFile({}, { cwd, envFile: 'missing.env' })).toThrow(/cannot read the env file/);
  });
});

describe('env files (corolla)', () => {
  const cwd = path.join(dir, 'cli');
  fs.mkdirSync(cwd);
  fs.writeFileSync(path.join(cwd, '.env'), `COROLLA_PRIVATE_KEY=${key('11')}\n`);
  fs.writeFileSync(path.join(cwd, 'other.env'), `COROLLA_PRIVATE_KEY=${key('22')}\n`);

  it('flags win over the environment, which wins over ./.env (or --dotenv)', async () => {
    expect((await corolla(['keys', 'address'], cwd)).stdout.trim()).toBe(addressOf(key('11')));
    expect((await corolla(['keys', 'address', '--dotenv', 'other.env'], cwd)).stdout.trim()).toBe(addressOf(key('22')));
    expect((await corolla(['keys', 'address'], cwd, { COROLLA_PRIVATE_KEY: key('33') })).stdout.trim()).toBe(addressOf(key('33')));
    expect((await corolla(['keys', 'address', '--private-key', key('44')], cwd, { COROLLA_PRIVATE_KEY: key('33') })).stdout.trim()).toBe(addressOf(key('44')));
    // a missing file is an error naming it
    const missing = await corolla(['keys', 'address', '--dotenv', 'nowhere.env'], cwd);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nowhere\.env/);
    expect(missing.stdout).toBe('');
  });

  it('keys new writes a keystore (password from .env) and prints its address only; a bad key is never echoed', async () => {
    const home = path.join(dir, 'new');
    fs.mkdirSync(home);
    fs.writeFileSync(path.join(home, '.env'), 'COROLLA_KEYSTORE_PASSWORD=from-the-file\n');
    const created = await corolla(['keys', 'new', '--keystore', 'node.json'], home);
    expect(created.code).toBe(0);
    const keystore = JSON.parse(fs.readFileSync(path.join(home, 'node.json'), 'utf8'));
    const secret = await decryptKeystore(keystore, 'from-the-file');
    expect(created.stdout).toBe(`${addressOf(secret)}\n`);
    expect(created.stdout + created.stderr).not.toContain(secret.slice(2));
    // and reads back as the account
    expect((await corolla(['keys', 'address', '--keystore', 'node.json'], home)).stdout.trim()).toBe(addressOf(secret));

    const bad = '0x' + 'ff'.repeat(32); // above the curve order
    const refused = await corolla(['keys', 'address'], home, { COROLLA_PRIVATE_KEY: bad });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not a valid secp256k1 private key/);
    expect(refused.stderr).not.toContain('ffffffff');
  });
});

describe('.env.example', () => {
  it('lists every variable, none with a value (never a real key), and changes nothing when copied as .env', () => {
    const text = fs.readFileSync(path.join(import.meta.dirname, '../../.env.example'), 'utf8');
    const names = [...text.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]);
    for (const name of ['COROLLA_PRIVATE_KEY', 'COROLLA_KEYSTORE', 'COROLLA_KEYSTORE_PASSWORD', 'COROLLA_RPC_URL', 'COROLLA_CHAIN_ID', 'COROLLA_REGISTRY', 'COROLLA_REWARD_POOL', 'COROLLA_ORACLE_URL', 'COROLLA_BOOTSTRAP', 'COROLLA_MODELS', 'DATABASE_URL', 'REDIS_URL', 'PRICE_PER_TOKEN_FAR']) {
      expect(names.map(([n]) => n)).toContain(name);
    }
    expect(names.filter(([, value]) => value !== '')).toEqual([]);
    const cwd = path.join(dir, 'example');
    fs.mkdirSync(cwd);
    fs.copyFileSync(path.join(import.meta.dirname, '../../.env.example'), path.join(cwd, '.env'));
    expect(loadEnvFile({}, { cwd })).toEqual([]);
  });
});
