/**
 * `corolla status`: a node's standing, as plumise-petals shows it: address, chain, balance, registration, the
 * current epoch and its pending reward (the oracle's claims that getPendingReward confirms on chain), and the
 * oracle's task and uptime figures when it reports them. Human lines by default, one JSON object with --json.
 * An unreachable oracle does not hide the chain's facts: they are printed, and the reward is said to be unknown.
 */
import { formatEther, isAddress, type Address } from 'viem';
import { agentRegistryAbi, rewardPoolAbi } from '../chain/contracts.js';
import { ChainError, OracleUnavailableError } from '../chain/errors.js';
import { checkClaims, pendingTotal, type OracleRewards } from '../chain/rewards.js';
import { accountFlags, accountFrom, accountUsage } from './account.js';
import { addressSetting, chainFlags, chainUsage, connect, expectContract, oracleFrom, setting } from './chain.js';
import { UsageError } from './errors.js';
import { parse } from './options.js';

const usage = `usage: corolla status [--address 0x… | account] [options]

${chainUsage}
  --registry ADDR        the AgentRegistry [env COROLLA_REGISTRY]
  --address 0x…          the node's address, instead of an account (nothing is signed)
  --json                 one JSON object instead of lines (bigints as decimal strings, wei beside ETH)

${accountUsage}`;

const flags = { ...chainFlags, registry: { type: 'string' }, address: { type: 'string' }, json: { type: 'boolean' }, ...accountFlags } as const;

export interface NodeStatus {
  readonly address: Address;
  readonly chainId: number;
  readonly balanceWei: bigint;
  readonly registered: boolean;
  readonly active: boolean;
  readonly slashed: boolean;
  readonly nodeId: string | null;
  readonly currentEpoch: bigint;
  /** Undefined without an oracle, or when it is unreachable (then `oracleError` says why). */
  readonly pendingRewardWei?: bigint;
  readonly pendingEpochs?: readonly bigint[];
  readonly tasksCompleted?: number;
  readonly uptimeSeconds?: number;
  readonly oracle: 'ok' | 'unreachable' | 'not configured';
  readonly oracleError?: string;
}

export async function run(argv: string[]): Promise<void> {
  const env = process.env;
  const values = parse(argv, flags, usage);
  const address = await addressOf(values);
  const registry = addressSetting(values.registry, env, 'COROLLA_REGISTRY', 'registry');
  const pool = addressSetting(values['reward-pool'], env, 'COROLLA_REWARD_POOL', 'reward-pool');
  const oracle = oracleFrom(values['oracle-url'], env);
  const { client, chainId } = await connect(setting(values['rpc-url'], env, 'COROLLA_RPC_URL'));
  await expectContract(client, registry, '--registry', chainId);
  await expectContract(client, pool, '--reward-pool', chainId);

  const read = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      throw new ChainError(`${what} failed`, { cause: error });
    }
  };
  const balanceWei = await read(`getBalance(${address})`, () => client.getBalance({ address }));
  const registered = await read(`AgentRegistry ${registry}: isRegistered(${address})`, () => client.readContract({ address: registry, abi: agentRegistryAbi, functionName: 'isRegistered', args: [address] }));
  const agent = registered ? await read(`AgentRegistry ${registry}: getAgent(${address})`, () => client.readContract({ address: registry, abi: agentRegistryAbi, functionName: 'getAgent', args: [address] })) : undefined;
  const currentEpoch = await read(`RewardPool ${pool}: getCurrentEpoch()`, () => client.readContract({ address: pool, abi: rewardPoolAbi, functionName: 'getCurrentEpoch' }));

  let status: NodeStatus = {
    address,
    chainId,
    balanceWei,
    registered,
    active: agent?.active === true && !agent.slashed,
    slashed: agent?.slashed === true,
    nodeId: agent && agent.nodeId !== '' ? agent.nodeId : null,
    currentEpoch,
    oracle: oracle ? 'ok' : 'not configured',
  };
  if (oracle) {
    let rewards: OracleRewards | undefined;
    try {
      rewards = await oracle.rewards(address);
    } catch (error) {
      if (!(error instanceof OracleUnavailableError)) throw error;
      status = { ...status, oracle: 'unreachable', oracleError: error.message };
    }
    if (rewards) {
      const checked = await checkClaims(client, pool, address, rewards.claimable);
      status = {
        ...status,
        pendingRewardWei: pendingTotal(checked),
        pendingEpochs: checked.filter((c) => c.state === 'pending').map((c) => c.epoch),
        ...(rewards.tasksCompleted !== undefined ? { tasksCompleted: rewards.tasksCompleted } : {}),
        ...(rewards.uptimeSeconds !== undefined ? { uptimeSeconds: rewards.uptimeSeconds } : {}),
      };
    }
  }
  process.stdout.write(values.json ? `${statusJson(status)}\n` : statusLines(status));
  if (status.oracleError) process.stderr.write(`corolla: ${status.oracleError}\n`);
}

async function addressOf(values: { address?: string } & Parameters<typeof accountFrom>[0]): Promise<Address> {
  if (values.address !== undefined) {
    if (!isAddress(values.address, { strict: false })) throw new UsageError(`--address must be an Ethereum address (0x + 40 hex digits), got "${values.address.slice(0, 60)}"`);
    return values.address;
  }
  const account = await accountFrom(values);
  if (!account) throw new UsageError(`give --address, or an account (--private-key, COROLLA_PRIVATE_KEY or --keystore)\n\n${usage}`);
  return account.address;
}

export function statusJson(status: NodeStatus): string {
  const { balanceWei, pendingRewardWei, ...rest } = status;
  return JSON.stringify(
    { ...rest, balance: formatEther(balanceWei), balanceWei, ...(pendingRewardWei !== undefined ? { pendingReward: formatEther(pendingRewardWei), pendingRewardWei } : { pendingReward: null }) },
    (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v),
  );
}

export function statusLines(status: NodeStatus): string {
  const yesNo = (value: boolean) => (value ? 'yes' : 'no');
  const pending =
    status.pendingRewardWei !== undefined
      ? `${formatEther(status.pendingRewardWei)} ETH${status.pendingEpochs!.length > 0 ? ` (epochs ${status.pendingEpochs!.join(', ')})` : ''}`
      : status.oracle === 'unreachable'
        ? 'unknown (the oracle is unreachable)'
        : 'unknown (no --oracle-url)';
  const lines: [string, string][] = [
    ['address', status.address],
    ['chain id', String(status.chainId)],
    ['balance', `${formatEther(status.balanceWei)} ETH`],
    ['registered', yesNo(status.registered)],
    ['active', yesNo(status.active)],
    ['slashed', yesNo(status.slashed)],
    ['node id', status.nodeId ?? '(none)'],
    ['current epoch', String(status.currentEpoch)],
    ['pending reward', pending],
    ...(status.tasksCompleted !== undefined ? [['tasks completed', String(status.tasksCompleted)] as [string, string]] : []),
    ...(status.uptimeSeconds !== undefined ? [['uptime', `${status.uptimeSeconds} s`] as [string, string]] : []),
  ];
  return lines.map(([name, value]) => `${name.padEnd(16)}${value}\n`).join('');
}
