/**
 * `corolla rewards claim`: claims every reward the oracle lists for the account, each proof checked first against
 * the epoch's root on chain (a proof that does not match is refused without a transaction). One line per epoch on
 * stdout: `epoch <n> <amount> ETH <tx hash | state>`. `--dry-run` only lists. Exits 1 if any claim was refused or failed.
 */
import { createPublicClient, createWalletClient, formatEther, http, parseEther, type LocalAccount } from 'viem';
import { InvalidRewardProofError } from '../chain/errors.js';
import { claimRewards, DEFAULT_AUTO_CLAIM_INTERVAL_MS, startAutoClaim, type ClaimOutcome } from '../chain/rewards.js';
import type { Logger } from '../util/logger.js';
import { accountFlags, accountFrom, accountUsage } from './account.js';
import { addressSetting, chainFlags, chainUsage, connect, expectContract, oracleFrom, setting } from './chain.js';
import { UsageError } from './errors.js';
import { numberOption, parse } from './options.js';

const usage = `usage: corolla rewards claim [options]

Claims the rewards the oracle lists for the account, after checking each proof against the RewardPool.

${chainUsage}
  --dry-run              list what would be claimed, send nothing

${accountUsage}`;

const flags = { ...chainFlags, 'dry-run': { type: 'boolean' }, ...accountFlags } as const;

export async function run(argv: string[]): Promise<void> {
  const [subcommand, ...rest] = argv;
  if (subcommand === '--help' || subcommand === '-h') {
    process.stdout.write(`${usage}\n`);
    return;
  }
  if (subcommand !== 'claim') throw new UsageError(`unknown rewards subcommand "${subcommand ?? ''}"\n\n${usage}`);
  const env = process.env;
  const values = parse(rest, flags, usage);
  const account = await accountFrom(values);
  if (!account) throw new UsageError('rewards claim needs an account: --private-key, COROLLA_PRIVATE_KEY or --keystore');
  const pool = addressSetting(values['reward-pool'], env, 'COROLLA_REWARD_POOL', 'reward-pool');
  const oracle = oracleFrom(values['oracle-url'], env);
  if (!oracle) throw new UsageError('--oracle-url (or COROLLA_ORACLE_URL) is required: the oracle holds the proofs');
  const rpcUrl = setting(values['rpc-url'], env, 'COROLLA_RPC_URL');
  const { client, chainId } = await connect(rpcUrl);
  await expectContract(client, pool, '--reward-pool', chainId);
  // chain undefined: the RPC node's chain id goes into each signature (EIP-155)
  const walletClient = createWalletClient({ account, transport: http(rpcUrl) });
  const outcomes = await claimRewards({ publicClient: client, walletClient }, pool, oracle, { dryRun: values['dry-run'] });
  if (outcomes.length === 0) process.stdout.write(`nothing to claim for ${account.address}\n`);
  for (const outcome of outcomes) process.stdout.write(`${outcomeLine(outcome, values['dry-run'] === true)}\n`);
  const failed = outcomes.filter((o) => o.error);
  for (const { error } of failed) process.stderr.write(`corolla: ${error!.message}\n`);
  if (failed.length > 0) process.exitCode = 1;
}

function outcomeLine(outcome: ClaimOutcome, dryRun: boolean): string {
  const what = outcome.txHash ?? (outcome.error instanceof InvalidRewardProofError ? 'refused: the proof does not match the root on chain' : outcome.error ? 'failed' : outcome.state === 'pending' && dryRun ? 'would claim' : outcome.state === 'claimed' ? 'already claimed' : outcome.state);
  return `epoch ${outcome.epoch} ${formatEther(outcome.amount)} ETH ${what}`;
}

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
): { start(log: Logger): () => void } | undefined {
  const threshold = values['auto-claim-threshold'];
  if (threshold === undefined) return undefined;
  if (!/^[0-9]+(\.[0-9]{1,18})?$/.test(threshold)) throw new UsageError(`--auto-claim-threshold must be an amount of ETH (e.g. 0.5), got "${threshold.slice(0, 40)}"`);
  const thresholdWei = parseEther(threshold);
  const minutes = numberOption(values['auto-claim-interval'], 'auto-claim-interval', { min: 0.01 });
  if (!account) throw new UsageError('--auto-claim-threshold needs an account (--private-key, COROLLA_PRIVATE_KEY or --keystore)');
  const pool = addressSetting(values['reward-pool'], env, 'COROLLA_REWARD_POOL', 'reward-pool');
  const oracle = oracleFrom(values['oracle-url'], env);
  if (!oracle) throw new UsageError('--auto-claim-threshold needs --oracle-url (or COROLLA_ORACLE_URL)');
  const rpcUrl = setting(values['rpc-url'], env, 'COROLLA_RPC_URL');
  if (rpcUrl === undefined) throw new UsageError('--auto-claim-threshold needs --rpc-url (or COROLLA_RPC_URL)');
  return {
    start(log) {
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
