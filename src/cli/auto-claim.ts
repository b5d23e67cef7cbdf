/**
 * `corolla serve --auto-claim-threshold`: the flags, checked before the model loads, and the periodic claims once the
 * server is up. Apart from the `rewards` command, so that a server's start does not import viem's clients.
 */
import type { LocalAccount } from 'viem';
import { DEFAULT_AUTO_CLAIM_INTERVAL_MS, startAutoClaim } from '../chain/rewards.js';
import type { Logger } from '../util/logger.js';
import { addressSetting, oracleFrom, setting } from './chain.js';
import { UsageError } from './errors.js';
import { numberOption } from './options.js';

export const autoClaimFlags = {
  'auto-claim-threshold': { type: 'string' },
  'auto-claim-interval': { type: 'string' },
  'reward-pool': { type: 'string' },
  'oracle-url': { type: 'string' },
} as const;

export const autoClaimUsage = `  --auto-claim-threshold ETH  claim the rewards the oracle lists once they reach ETH (off by default); needs an
                         account, --rpc-url, --reward-pool ADDR [env COROLLA_REWARD_POOL] and --oracle-url URL
                         [env COROLLA_ORACLE_URL]
  --auto-claim-interval MIN   minutes between checks (default ${DEFAULT_AUTO_CLAIM_INTERVAL_MS / 60_000})`;

/**
 * `serve --auto-claim-threshold`: checked before the model loads (a bad setting fails at once); `start` begins the
 * periodic claims and returns their stop. Undefined when the flag is not given.
 */
export function autoClaimFrom(
  values: { 'auto-claim-threshold'?: string; 'auto-claim-interval'?: string; 'reward-pool'?: string; 'oracle-url'?: string; 'rpc-url'?: string },
  account: LocalAccount | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): { start(log: Logger): Promise<() => void> } | undefined {
  const threshold = values['auto-claim-threshold'];
  if (threshold === undefined) return undefined;
  if (!/^[0-9]+(\.[0-9]{1,18})?$/.test(threshold)) throw new UsageError(`--auto-claim-threshold must be an amount of ETH (e.g. 0.5), got "${threshold.slice(0, 40)}"`);
  const minutes = numberOption(values['auto-claim-interval'], 'auto-claim-interval', { min: 0.01 });
  if (!account) throw new UsageError('--auto-claim-threshold needs an account (--private-key, COROLLA_PRIVATE_KEY or --keystore)');
  const pool = addressSetting(values['reward-pool'], env, 'COROLLA_REWARD_POOL', 'reward-pool');
  const oracle = oracleFrom(values['oracle-url'], env);
  if (!oracle) throw new UsageError('--auto-claim-threshold needs --oracle-url (or COROLLA_ORACLE_URL)');
  const rpcUrl = setting(values['rpc-url'], env, 'COROLLA_RPC_URL');
  if (rpcUrl === undefined) throw new UsageError('--auto-claim-threshold needs --rpc-url (or COROLLA_RPC_URL)');
  return {
    async start(log) {
      // viem's clients take half a second to import: only a server that auto-claims loads them
      const [{ createPublicClient, createWalletClient, http, parseEther }, { outcomeLine }] = await Promise.all([import('viem'), import('./rewards.js')]);
      const thresholdWei = parseEther(threshold);
      const transport = http(rpcUrl);
      const clients = { publicClient: createPublicClient({ transport }), walletClient: createWalletClient({ account, transport }) };
      const intervalMs = minutes !== undefined ? minutes * 60_000 : DEFAULT_AUTO_CLAIM_INTERVAL_MS;
      log(`auto-claim: every ${intervalMs / 60_000} min, once ${threshold} ETH is pending in the RewardPool at ${pool}`);
      const auto = startAutoClaim(clients, pool, oracle, {
        thresholdWei,
        intervalMs,
        onRound: (result) => {
          if ('error' in result) log(`auto-claim: ${result.error.message}`);
          for (const outcome of 'outcomes' in result ? result.outcomes : []) log(`auto-claim: ${outcomeLine(outcome, false)}${outcome.error ? ` (${outcome.error.message})` : ''}`);
        },
      });
      return () => auto.stop();
    },
  };
}
