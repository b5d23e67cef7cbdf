/**
 * `corolla status` and `corolla rewards claim` as child processes against a real anvil chain, with a registered
 * node paid in one reported epoch and a tiny HTTP oracle serving its proof.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rewardPoolAbi } from '../../src/chain/contracts.js';
import { ANVIL_MNEMONIC, startAnvil, type Anvil } from '../support/anvil.js';
import { killCorollaProcesses, runCorolla } from '../support/cli.js';
import { rewardedNode, type RewardedNode } from '../support/rewards.js';
import { mnemonicToAccount } from 'viem/accounts';
import { bytesToHex, parseEther } from 'viem';
import { autoClaimFrom } from '../../src/cli/auto-claim.js';
import { UsageError } from '../../src/cli/errors.js';
import { lineLogger } from '../../src/util/logger.js';

let anvil: Anvil;
let setup: RewardedNode;
let node: Anvil['accounts'][number];
let chainArgs: string[];
/** The node's private key (anvil's public dev key), for --private-key. */
let nodeKey: string;

beforeAll(async () => {
  anvil = await startAnvil();
  node = anvil.accounts[3]!;
  nodeKey = bytesToHex(mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 3 }).getHdKey().privateKey!);
  setup = await rewardedNode(anvil, node, anvil.accounts[4]!.address);
  setup.answers.set(node.address.toLowerCase(), { ...setup.answers.get(node.address.toLowerCase())!, tasksCompleted: 42, uptimeSeconds: 3600 });
  chainArgs = ['--rpc-url', anvil.rpcUrl, '--registry', setup.contracts.agentRegistry, '--reward-pool', setup.contracts.rewardPool];
});
afterAll(async () => {
  killCorollaProcesses();
  await setup?.stop();
  anvil?.stop();
});

/** No COROLLA_* setting leaks in from the test's own environment. */
const CLEAN_ENV = { COROLLA_RPC_URL: '', COROLLA_REGISTRY: '', COROLLA_REWARD_POOL: '', COROLLA_ORACLE_URL: '', COROLLA_PRIVATE_KEY: '', COROLLA_KEYSTORE: '' };
const corolla = (args: string[], env: NodeJS.ProcessEnv = {}) => runCorolla(args, { env: { ...CLEAN_ENV, ...env } });

describe('corolla status', () => {
  it('--json: address, chain, balance, registration, epoch, pending reward and the oracle figures, as one object', async () => {
    const result = await corolla(['status', '--address', node.address, ...chainArgs, '--oracle-url', setup.oracleUrl, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status).toMatchObject({
      address: node.address,
      chainId: 31337,
      registered: true,
      active: true,
      slashed: false,
      nodeId: null,
      currentEpoch: String(setup.leaf.epoch + 1n),
      pendingReward: '1.25',
      pendingRewardWei: '1250000000000000000',
      pendingEpochs: [String(setup.leaf.epoch)],
      tasksCompleted: 42,
      uptimeSeconds: 3600,
      oracle: 'ok',
    });
    expect(Number(status.balance)).toBeGreaterThan(9000);
    expect(BigInt(status.balanceWei)).toBe(await anvil.publicClient.getBalance({ address: node.address }));
  });

  it('human lines from the account and COROLLA_* variables; without an oracle the reward is unknown and its figures omitted', async () => {
    const result = await corolla(['status'], { COROLLA_PRIVATE_KEY: nodeKey, COROLLA_RPC_URL: anvil.rpcUrl, COROLLA_REGISTRY: setup.contracts.agentRegistry, COROLLA_REWARD_POOL: setup.contracts.rewardPool });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`address         ${node.address}\n`);
    expect(result.stdout).toContain('chain id        31337\n');
    expect(result.stdout).toContain('registered      yes\nactive          yes\nslashed         no\n');
    expect(result.stdout).toContain('pending reward  unknown (no --oracle-url)\n');
    expect(result.stdout).not.toMatch(/tasks completed|uptime/);
    expect(result.stdout).not.toContain(nodeKey.slice(2));
  });

  it('an unregistered address is shown as such', async () => {
    const stranger = anvil.accounts[7]!.address;
    const result = await corolla(['status', '--address', stranger, ...chainArgs, '--oracle-url', setup.oracleUrl]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('registered      no\nactive          no\n');
    expect(result.stdout).toContain('pending reward  0 ETH\n');
  });

  it('an unreachable oracle: the chain facts are still printed, and the oracle is said to be unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const result = await corolla(['status', '--address', node.address, ...chainArgs, '--oracle-url', url]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('registered      yes\n');
    expect(result.stdout).toContain('pending reward  unknown (the oracle is unreachable)\n');
    expect(result.stderr).toContain(`the oracle at ${url} is unreachable`);
  });

  it('clear errors: no RPC, a malformed address, no contract at the address, an RPC that does not answer', async () => {
    const wrongAddress = anvil.accounts[8]!.address;
    const [noRpc, malformed, wrong, deadRpc] = await Promise.all([
      corolla(['status', '--address', node.address, '--registry', setup.contracts.agentRegistry, '--reward-pool', setup.contracts.rewardPool]),
      corolla(['status', '--address', node.address, ...chainArgs, '--registry', '0x1234']),
      corolla(['status', '--address', node.address, ...chainArgs, '--registry', wrongAddress]),
      corolla(['status', '--address', node.address, ...chainArgs, '--rpc-url', 'http://127.0.0.1:1']),
    ]);
    expect([noRpc.code, noRpc.stderr]).toEqual([1, 'corolla: --rpc-url (or COROLLA_RPC_URL) is required\n']);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('--registry must be an Ethereum address');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`no contract at ${wrongAddress} on chain 31337: is --registry the right address`);
    expect(deadRpc.code).toBe(1);
    expect(deadRpc.stderr).toContain('corolla: the RPC at http://127.0.0.1:1 does not answer');
  });
});

describe('corolla rewards claim', () => {
  it('--dry-run lists, a claim prints epoch, amount and tx hash, a second claim sends nothing, status then shows 0', async () => {
    const args = ['rewards', 'claim', '--private-key', nodeKey, '--rpc-url', anvil.rpcUrl, '--reward-pool', setup.contracts.rewardPool, '--oracle-url', setup.oracleUrl];
    const epoch = setup.leaf.epoch;
    const dry = await corolla([...args, '--dry-run']);
    expect([dry.code, dry.stdout]).toEqual([0, `epoch ${epoch} 1.25 ETH would claim\n`]);

    const before = await anvil.publicClient.getBalance({ address: node.address });
    const claim = await corolla(args);
    expect(claim.code).toBe(0);
    const [, hash] = /^epoch \d+ 1\.25 ETH (0x[0-9a-f]{64})\n$/.exec(claim.stdout) ?? [];
    expect(hash, claim.stdout + claim.stderr).toBeDefined();
    const receipt = await anvil.publicClient.getTransactionReceipt({ hash: hash as `0x${string}` });
    expect((await anvil.publicClient.getBalance({ address: node.address })) - before + receipt.gasUsed * receipt.effectiveGasPrice).toBe(1_250_000_000_000_000_000n);

    const again = await corolla(args);
    expect([again.code, again.stdout]).toEqual([0, `epoch ${epoch} 1.25 ETH already claimed\n`]);
    const status = JSON.parse((await corolla(['status', '--address', node.address, ...chainArgs, '--oracle-url', setup.oracleUrl, '--json'])).stdout);
    expect([status.pendingReward, status.pendingEpochs]).toEqual(['0', []]);
  });

  it('refuses a proof that does not match the root, sends nothing, and exits 1', async () => {
    const other = anvil.accounts[4]!;
    const leaf = setup.tree.leaves.find((l) => l.account === other.address)!;
    setup.answers.set(other.address.toLowerCase(), { claimable: [{ ...leaf, amount: leaf.amount * 2n, proof: setup.tree.proof(other.address) }] });
    const key = bytesToHex(mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 4 }).getHdKey().privateKey!);
    const nonce = await anvil.publicClient.getTransactionCount({ address: other.address });
    const result = await corolla(['rewards', 'claim', '--private-key', key, '--rpc-url', anvil.rpcUrl, '--reward-pool', setup.contracts.rewardPool, '--oracle-url', setup.oracleUrl]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe(`epoch ${leaf.epoch} 1 ETH refused: the proof does not match the root on chain\n`);
    expect(result.stderr).toContain('does not match the Merkle root');
    expect(await anvil.publicClient.getTransactionCount({ address: other.address })).toBe(nonce);
  });
});

describe('corolla serve --auto-claim-threshold', () => {
  it('is checked before the model loads: bad amounts and missing settings are usage errors', async () => {
    const account = anvil.accounts[5]!;
    const settings = { 'rpc-url': anvil.rpcUrl, 'reward-pool': setup.contracts.rewardPool, 'oracle-url': setup.oracleUrl };
    expect(autoClaimFrom({ ...settings }, account, {})).toBeUndefined();
    expect(() => autoClaimFrom({ ...settings, 'auto-claim-threshold': '1e18' }, account, {})).toThrow(/must be an amount of ETH/);
    expect(() => autoClaimFrom({ ...settings, 'auto-claim-threshold': '1' }, undefined, {})).toThrow(/needs an account/);
    expect(() => autoClaimFrom({ ...settings, 'oracle-url': undefined, 'auto-claim-threshold': '1' }, account, {})).toThrow(UsageError);
    const serve = await corolla(['serve', '--model', '/nonexistent/model.gguf', '--auto-claim-threshold', '0.5']);
    expect([serve.code, serve.stderr.trim().split('\n').at(-1)]).toEqual([1, 'corolla: --auto-claim-threshold needs an account (--private-key, COROLLA_PRIVATE_KEY or --keystore)']);
  });

  it('claims in the background once the pending reward reaches the threshold', async () => {
    const earner = anvil.accounts[5]!;
    const tree = await setup.reportEpoch((epoch) => [{ account: earner.address, epoch, amount: parseEther('0.4'), contribution: 7n }]);
    setup.answers.set(earner.address.toLowerCase(), { claimable: [{ ...tree.leaves[0]!, proof: tree.proof(earner.address) }] });
    const lines: string[] = [];
    const log = lineLogger((line) => lines.push(line)).forComponent('corolla:serve');
    const auto = autoClaimFrom({ 'auto-claim-threshold': '0.4', 'auto-claim-interval': '0.01', 'rpc-url': anvil.rpcUrl, 'reward-pool': setup.contracts.rewardPool, 'oracle-url': setup.oracleUrl }, earner, {})!;
    const stop = await auto.start(log);
    try {
      const deadline = Date.now() + 10_000;
      while (!(await anvil.publicClient.readContract({ address: setup.contracts.rewardPool, abi: rewardPoolAbi, functionName: 'hasClaimed', args: [earner.address, tree.epoch] }))) {
        if (Date.now() > deadline) throw new Error(`no auto-claim within 10 s: ${lines.join('; ')}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      stop();
    }
    expect(lines[0]).toContain('auto-claim: every 0.01 min, once 0.4 ETH is pending');
  });
});
