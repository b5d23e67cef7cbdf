/**
 * The chain half of `corolla demo --chain`: a local anvil (from the @foundry-rs/anvil package), the contracts
 * deployed with a short epoch, each demo server given one of anvil's well-known development keys (public: for a
 * local chain only) and registered, an oracle, and at the end the epoch's rewards claimed and shown beside the work.
 */
import { bytesToHex, createPublicClient, createWalletClient, formatEther, http, parseEther, type Address, type Hex, type PublicClient } from 'viem';
import { mnemonicToAccount, privateKeyToAccount, type HDAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { ANVIL_DEV_MNEMONIC, startLocalAnvil } from '../chain/anvil.js';
import { confirmTransaction, deployContracts, rewardPoolAt, type DeployedContracts } from '../chain/contracts.js';
import { claimRewards, httpRewardOracle } from '../chain/rewards.js';
import type { BlockRange } from '../util/blocks.js';
import { ChildProcessError } from './errors.js';
import { startCorolla, type CorollaProcess } from './processes.js';

/** Accounts 0–2 run the deployment, the oracle and the gateway; servers take 3 onwards. */
const FIRST_SERVER_ACCOUNT = 3;
export const DEFAULT_DEMO_EPOCH_SECONDS = 20;
/** Each epoch's budget. */
const EPOCH_BUDGET = parseEther('1');
/** Epochs funded ahead (the traffic's epoch is not known in advance): enough for a slow start. */
const FUNDED_EPOCHS = 40n;
/** Late receipts are taken this long after an epoch ends (the gateway sends them every 5 s). */
const CLOSE_GRACE_SECONDS = 6;
const REPORT_TIMEOUT_MS = 120_000;

export interface DemoChain {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly contracts: DeployedContracts;
  readonly epochSeconds: number;
  readonly oracleKey: Hex;
  readonly gatewayKey: Hex;
  /** The dev account of server `index`. */
  server(index: number): { readonly address: Address; readonly key: Hex };
  readonly publicClient: PublicClient;
  stop(): void;
}

/** Starts anvil in its own process group (a block a second, as on a real chain: the pool's current epoch follows the clock), deploys the contracts with `epochSeconds` epochs and funds the coming epochs. */
export async function startDemoChain(servers: number, epochSeconds: number, say: (line: string) => void): Promise<DemoChain> {
  const anvil = await startLocalAnvil({ accounts: FIRST_SERVER_ACCOUNT + servers, blockTimeSeconds: 1 });
  const { rpcUrl, stop } = anvil;
  const publicClient = createPublicClient({ chain: foundry, transport: http(rpcUrl), pollingInterval: 50 }) as PublicClient;
  const account = (index: number): HDAccount => anvil.accounts[index]!;
  const keyOf = (index: number): Hex => bytesToHex(account(index).getHdKey().privateKey!);
  say(`anvil: ${rpcUrl} (chain ${foundry.id}; accounts from anvil's public dev mnemonic: for a local demo only)`);

  const admin = account(0);
  const clients = { walletClient: createWalletClient({ account: admin, chain: foundry, transport: http(rpcUrl) }), publicClient };
  const contracts = await deployContracts(clients, { admin: admin.address, oracle: account(1).address, epochDurationSeconds: epochSeconds });
  const pool = rewardPoolAt(clients, contracts.rewardPool);
  const first = await pool.read.getCurrentEpoch();
  // sent one after another, confirmed together: a block comes only every second
  const funding: Hex[] = [];
  for (let epoch = first; epoch < first + FUNDED_EPOCHS; epoch++) funding.push(await pool.write.fundEpoch([epoch], { value: EPOCH_BUDGET }));
  await Promise.all(funding.map((hash, i) => confirmTransaction(publicClient, hash, `funding epoch ${first + BigInt(i)}`)));
  say(`contracts: AgentRegistry ${contracts.agentRegistry}, RewardPool ${contracts.rewardPool} (epochs of ${epochSeconds} s, ${formatEther(EPOCH_BUDGET)} ETH each)`);
  return {
    rpcUrl,
    chainId: foundry.id,
    contracts,
    epochSeconds,
    oracleKey: keyOf(1),
    gatewayKey: keyOf(2),
    server: (index) => ({ address: account(FIRST_SERVER_ACCOUNT + index).address, key: keyOf(FIRST_SERVER_ACCOUNT + index) }),
    publicClient,
    stop,
  };
}

/** `corolla serve` arguments and environment that give server `index` its key and register it. */
export function serverChainOptions(chain: DemoChain, index: number): { args: string[]; env: NodeJS.ProcessEnv } {
  return { args: ['--rpc-url', chain.rpcUrl, '--registry', chain.contracts.agentRegistry, '--register'], env: { COROLLA_PRIVATE_KEY: chain.server(index).key } };
}

/** `corolla gateway` arguments and environment that make it sign receipts to `oracleUrl`. */
export function gatewayChainOptions(chain: DemoChain, oracleUrl: string): { args: string[]; env: NodeJS.ProcessEnv } {
  return { args: ['--chain-id', String(chain.chainId), '--reward-pool', chain.contracts.rewardPool, '--oracle-url', oracleUrl], env: { COROLLA_PRIVATE_KEY: chain.gatewayKey } };
}

/** Starts `corolla oracle` on the demo chain, with its store in `dataDir`, taking the gateway's receipts. */
export async function startDemoOracle(chain: DemoChain, dataDir: string): Promise<CorollaProcess & { url: string }> {
  const gateway = mnemonicToAccount(ANVIL_DEV_MNEMONIC, { addressIndex: 2 }).address;
  const oracle = await startCorolla(
    'oracle',
    ['oracle', '--rpc-url', chain.rpcUrl, '--registry', chain.contracts.agentRegistry, '--pool', chain.contracts.rewardPool, '--payers', gateway, '--port', '0', '--data-dir', dataDir, '--close-grace', String(CLOSE_GRACE_SECONDS), '--close-interval', '1'],
    { ready: /^ready /, timeoutMs: 120_000, env: { COROLLA_PRIVATE_KEY: chain.oracleKey } },
  );
  return Object.assign(oracle, { url: oracle.readyLine.trim().slice('ready '.length) });
}

interface EpochJson {
  readonly epoch: string;
  readonly status: string;
  readonly budget?: string;
  readonly dust?: string;
  readonly totalRewards?: string;
  readonly nodes: readonly { address: string; receipts: number; blockTokens: string; amount?: string }[];
}

/**
 * Waits for every epoch since `since` (unix ms) that holds receipts to close and be reported, claims each server's
 * rewards from its own account, and prints a table: each server's blocks, tokens served, work and reward.
 */
export async function settleDemoEpochs(chain: DemoChain, oracleUrl: string, spans: readonly BlockRange[], since: number, say: (line: string) => void): Promise<void> {
  const pool = rewardPoolAt({ walletClient: createWalletClient({ account: mnemonicToAccount(ANVIL_DEV_MNEMONIC), chain: foundry, transport: http(chain.rpcUrl) }), publicClient: chain.publicClient }, chain.contracts.rewardPool);
  const [genesis, duration] = [Number(await pool.read.genesis()) * 1000, chain.epochSeconds * 1000];
  const epochAt = (ms: number) => Math.floor((ms - genesis) / duration);
  const reports: EpochJson[] = [];
  // the epochs the traffic's receipts can fall in: from its start to now (fixed here, not moving while we wait)
  const last = epochAt(Date.now());
  for (let epoch = epochAt(since); epoch <= last; epoch++) {
    const closesAt = genesis + (epoch + 1) * duration + CLOSE_GRACE_SECONDS * 1000;
    say(`waiting for epoch ${epoch} to end and be reported (about ${Math.max(0, Math.ceil((closesAt - Date.now()) / 1000))} s)…`);
    for (;;) {
      const report = (await (await fetch(`${oracleUrl}/v1/epochs/${epoch}`)).json()) as EpochJson;
      if (report.status === 'reported') {
        reports.push(report);
        break;
      }
      if (report.nodes.length === 0 && Date.now() > closesAt + 3_000) break; // no receipts fell in it
      if (Date.now() > closesAt + REPORT_TIMEOUT_MS) throw new ChildProcessError(`the oracle did not report epoch ${epoch}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  if (reports.length === 0) throw new ChildProcessError('no receipts reached the oracle');

  const oracle = httpRewardOracle(oracleUrl);
  const claimed = new Map<string, bigint>();
  for (let index = 0; index < spans.length; index++) {
    const { address, key } = chain.server(index);
    const walletClient = createWalletClient({ account: privateKeyToAccount(key), chain: foundry, transport: http(chain.rpcUrl) });
    for (const outcome of await claimRewards({ publicClient: chain.publicClient, walletClient }, chain.contracts.rewardPool, oracle)) {
      if (outcome.error) throw outcome.error;
      if (outcome.txHash) claimed.set(address.toLowerCase(), (claimed.get(address.toLowerCase()) ?? 0n) + outcome.amount);
    }
  }

  for (const report of reports) {
    const rows = spans.map((span, index) => {
      const address = chain.server(index).address.toLowerCase();
      const node = report.nodes.find((n) => n.address === address);
      const blocks = span.end - span.start;
      const work = BigInt(node?.blockTokens ?? 0);
      return [`demo-${index}`, `${span.start}:${span.end}`, `${address.slice(0, 10)}…`, String(work / BigInt(blocks)), String(work), node?.amount ? formatEther(BigInt(node.amount)) : '0'];
    });
    const header = ['server', 'blocks', 'address', 'tokens served', 'tokens × blocks', 'reward (ETH)'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => '  ' + cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
    say(`\nepoch ${report.epoch}: budget ${formatEther(BigInt(report.budget!))} ETH, paid ${formatEther(BigInt(report.totalRewards!))} ETH, rounding dust ${report.dust} wei (stays in the pool)`);
    say(line(header));
    for (const row of rows) say(line(row));
  }
  const total = [...claimed.values()].reduce((a, b) => a + b, 0n);
  say(`\neach server claimed its reward from the RewardPool with its own key: ${formatEther(total)} ETH in all.`);
}
