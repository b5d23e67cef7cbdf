/**
 * The flags and variables that give a command its Ethereum account, in the order they are tried: `--private-key`,
 * COROLLA_PRIVATE_KEY, then a keystore (`--keystore` or COROLLA_KEYSTORE) with its password from
 * `--keystore-password-file` or COROLLA_KEYSTORE_PASSWORD. The key is never printed or logged: commands show the
 * address only.
 */
import type { PrivateKeyAccount } from 'viem';
import type { KeySources } from '../chain/keys.js';

type Env = Readonly<Record<string, string | undefined>>;

export const accountFlags = {
  'private-key': { type: 'string' },
  keystore: { type: 'string' },
  'keystore-password-file': { type: 'string' },
} as const;

export const accountUsage = `Ethereum account (tried in this order; the key is never printed or logged):
  --private-key 0x…      the raw key [env COROLLA_PRIVATE_KEY] (visible to other local users in the process list:
                         prefer the environment, .env or a keystore)
  --keystore FILE        an encrypted Web3 Secret Storage (v3) keystore, as geth/ethers write it or
                         "corolla keys new" creates it [env COROLLA_KEYSTORE]
  --keystore-password-file FILE  its password (or env COROLLA_KEYSTORE_PASSWORD)`;

export interface AccountFlagValues {
  readonly 'private-key'?: string;
  readonly keystore?: string;
  readonly 'keystore-password-file'?: string;
}

/** The key sources the flags and `env` give: each flag wins over its variable. */
export function keySourcesFrom(values: AccountFlagValues, env: Env = process.env): KeySources {
  const privateKey = values['private-key'] ?? nonEmpty(env.COROLLA_PRIVATE_KEY);
  if (privateKey !== undefined) return { privateKey };
  const file = values.keystore ?? nonEmpty(env.COROLLA_KEYSTORE);
  if (file === undefined) return {};
  const passwordFile = values['keystore-password-file'];
  return { keystore: passwordFile !== undefined ? { file, passwordFile } : { file, password: env.COROLLA_KEYSTORE_PASSWORD } };
}

/** The account the flags and `env` give, or undefined when they give none. */
export async function accountFrom(values: AccountFlagValues, env: Env = process.env): Promise<PrivateKeyAccount | undefined> {
  const sources = keySourcesFrom(values, env);
  if (sources.privateKey === undefined && sources.keystore === undefined) return undefined;
  // viem's accounts take a quarter of a second to import: a command run without a key does not load them
  const { loadAccount } = await import('../chain/keys.js');
  return loadAccount(sources);
}

/** An empty variable (`COROLLA_PRIVATE_KEY=` in a .env template) counts as unset. */
const nonEmpty = (value: string | undefined): string | undefined => (value === undefined || value === '' ? undefined : value);
