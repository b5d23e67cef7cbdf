/**
 * The chain settings `status` and `rewards` share: each flag wins over its COROLLA_* variable (which a .env file may
 * set). Addresses are checked for form here and for a contract behind them once the RPC answers.
 */
import type { Address, PublicClient } from 'viem';
import { ChainError } from '../chain/errors.js';
import { httpRewardOracle, type RewardOracle } from '../chain/rewards.js';
import { UsageError } from './errors.js';

type Env = Readonly<Record<string, string | undefined>>;

/** An Ethereum address in any letter case (a checksum is not required of settings). */
export const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export const chainFlags = {
  'rpc-url': { type: 'string' },
  'reward-pool': { type: 'string' },
  'oracle-url': { type: 'string' },
} as const;

export const chainUsage = `  --rpc-url URL          the chain's JSON-RPC endpoint [env COROLLA_RPC_URL]
  --reward-pool ADDR     the RewardPool [env COROLLA_REWARD_POOL]
  --oracle-url URL       the oracle's HTTP API, e.g. http://127.0.0.1:8700 [env COROLLA_ORACLE_URL]`;

const nonEmpty = (value: string | undefined): string | undefined => (value === undefined || value === '' ? undefined : value);

/** The flag's value, else the variable's; undefined when neither is given. */
export const setting = (flag: string | undefined, env: Env, variable: string): string | undefined => flag ?? nonEmpty(env[variable]);

export function addressSetting(flag: string | undefined, env: Env, variable: string, name: string): Address {
  const value = setting(flag, env, variable);
  if (value === undefined) throw new UsageError(`--${name} (or ${variable}) is required`);
  if (!ADDRESS.test(value)) throw new UsageError(`--${name} must be an Ethereum address (0x + 40 hex digits), got "${value.slice(0, 60)}"`);
  return value as Address;
}

/** A client on the RPC at `rpcUrl`, once it answers: its chain id. */
export async function connect(rpcUrl: string | undefined): Promise<{ client: PublicClient; chainId: number }> {
  if (rpcUrl === undefined) throw new UsageError('--rpc-url (or COROLLA_RPC_URL) is required');
  // viem's clients take half a second to import: `serve` loads this module for its flags, and needs them only here
  const { createPublicClient, http } = await import('viem');
  const client = createPublicClient({ transport: http(rpcUrl, { retryCount: 1 }) });
  try {
    return { client, chainId: await client.getChainId() };
  } catch (error) {
    throw new ChainError(`the RPC at ${rpcUrl} does not answer`, { cause: error });
  }
}

/** Fails clearly when no contract is deployed at `address` (a wrong address, or the wrong chain). */
export async function expectContract(client: PublicClient, address: Address, what: string, chainId: number): Promise<void> {
  let code: string | undefined;
  try {
    code = await client.getCode({ address });
  } catch (error) {
    throw new ChainError(`reading the code at ${address} failed`, { cause: error });
  }
  if (code === undefined || code === '0x') throw new ChainError(`no contract at ${address} on chain ${chainId}: is ${what} the right address, on the right chain?`);
}

export function oracleFrom(flag: string | undefined, env: Env): RewardOracle | undefined {
  const url = setting(flag, env, 'COROLLA_ORACLE_URL');
  if (url === undefined) return undefined;
  if (!URL.canParse(url)) throw new UsageError(`--oracle-url must be a URL, got "${url.slice(0, 80)}"`);
  return httpRewardOracle(url);
}
