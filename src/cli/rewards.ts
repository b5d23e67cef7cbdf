/**
 * `corolla rewards claim`: claims every reward the oracle lists for the account, each proof checked first against
 * the epoch's root on chain (a proof that does not match is refused without a transaction). One line per epoch on
 * stdout: `epoch <n> <amount> ETH <tx hash | state>`. `--dry-run` only lists. Exits 1 if any claim was refused or failed.
 */
import { createWalletClient, formatEther, http } from 'viem';
import { InvalidRewardProofError } from '../chain/errors.js';
import { claimRewards, type ClaimOutcome } from '../chain/rewards.js';
import { accountFlags, accountFrom, accountUsage } from './account.js';
import { addressSetting, chainFlags, chainUsage, connect, expectContract, oracleFrom, setting } from './chain.js';
import { UsageError } from './errors.js';
import { parse } from './options.js';

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

/** One epoch's line: `epoch <n> <amount> ETH <tx hash | state>` (also what serve's auto-claim logs). */
export function outcomeLine(outcome: ClaimOutcome, dryRun: boolean): string {
  const what = outcome.txHash ?? (outcome.error instanceof InvalidRewardProofError ? 'refused: the proof does not match the root on chain' : outcome.error ? 'failed' : outcome.state === 'pending' && dryRun ? 'would claim' : outcome.state === 'claimed' ? 'already claimed' : outcome.state);
  return `epoch ${outcome.epoch} ${formatEther(outcome.amount)} ETH ${what}`;
}
