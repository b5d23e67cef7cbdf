// runs alone: starts computing processes or measures time (vitest.config.ts)
/**
 * The incentive layer end to end, as operators run it: anvil, the contracts deployed, three `corolla serve` processes
 * with their own keys (registered with --register), a `corolla oracle`, and a `corolla gateway` that signs receipts
 * to it (both on fresh PostgreSQL databases: run `bash scripts/test-services.sh`). Traffic goes through the gateway; the epochs close on the RewardPool's short schedule (real time, read by the
 * oracle from the contract); each server claims with `corolla rewards claim`. Checked: the oracle's work per server
 * equals the gateway ledger's, each payout is within 1% of the budget's share of receipted work (tokens × blocks),
 * and Σ payouts + dust = budget exactly, with the dust the amount the pool rolled over.
 */
import fs from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { bytesToHex, parseAbiItem, parseEther, type Hex } from 'viem';
import { startCorolla, type CorollaProcess } from '../../src/cli/processes.js';
import { confirmTransaction, deployContracts, rewardPoolAt } from '../../src/chain/contracts.js';
import { runCorolla } from '../support/cli.js';
import { startAnvil, type Anvil } from '../support/anvil.js';
import { tempDir } from '../support/files.js';
import { createTestDatabase, dropTestDatabases } from '../support/ledger.js';
import { STORIES_GGUF } from '../support/models.js';
import { freePort } from '../../src/util/processes.js';

/** Short, so an epoch ends while the test waits; the oracle reads it from the pool. */
const EPOCH_SECONDS = 15;
/** Late receipts are taken this long after an epoch ends (the gateway sends every 5 s). */
const CLOSE_GRACE_SECONDS = 8;
/** An odd budget, so the pro-rata split leaves rounding dust. */
const BUDGET = parseEther('1') + 7n;
const SPANS = ['0:2', '2:4', '4:5'];
const ADMIN_KEY = 'sk-payout-admin-0123456789';

const started: CorollaProcess[] = [];
let anvil: Anvil | undefined;
afterAll(async () => {
  await Promise.all(started.splice(0).reverse().map((p) => p.stop()));
  anvil?.stop();
  await dropTestDatabases();
}, 60_000);

const keyOf = (account: Anvil['accounts'][number]): Hex => bytesToHex(account.getHdKey().privateKey!);

async function start(name: string, args: string[]): Promise<CorollaProcess> {
  const p = await startCorolla(name, args, { ready: /^ready /, timeoutMs: 600_000, ...(process.env.COROLLA_TEST_VERBOSE ? { onStderr: (line: string) => process.stderr.write(`${name}: ${line}\n`) } : {}) });
  started.push(p);
  return p;
}

async function getJson(url: string, headers: Record<string, string> = {}): Promise<any> {
  const response = await fetch(url, { headers });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return response.json();
}

const step = (what: string) => process.stderr.write(`[payout ${new Date().toISOString()}] ${what}\n`);

it('pays three servers in proportion to receipted work, Σ payouts + dust = budget', async () => {
  const began = Date.now();
  // a block every second, as on a real chain: the pool's view of the current epoch follows the clock
  anvil = await startAnvil({ blockTimeSeconds: 1 });
  const [admin, oracle, gatewayAccount, ...rest] = anvil.accounts;
  const servers = rest.slice(0, 3);
  const contracts = await deployContracts(anvil.clientsFor(admin!), { admin: admin!.address, oracle: oracle!.address, epochDurationSeconds: EPOCH_SECONDS });
  const pool = rewardPoolAt(anvil.clientsFor(admin!), contracts.rewardPool);
  // the traffic's epoch is not known ahead: fund the next several
  const first = await pool.read.getCurrentEpoch();
  // sent one after another, confirmed together: a block comes only every second
  const funding: Hex[] = [];
  for (let epoch = first; epoch < first + 30n; epoch++) funding.push(await pool.write.fundEpoch([epoch], { value: BUDGET }));
  await Promise.all(funding.map((hash) => confirmTransaction(anvil!.publicClient, hash, 'fund')));
  step('deployed and funded');
  const chainFlags = ['--rpc-url', anvil.rpcUrl, '--registry', contracts.agentRegistry];

  const dir = tempDir('corolla-payout-');
  const keysFile = path.join(dir, 'keys.json');
  fs.writeFileSync(keysFile, JSON.stringify({ keys: [{ id: 'admin', key: ADMIN_KEY, admin: true }] }));
  const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
  started.push(dht);
  const bootstrap = dht.readyLine.trim();
  // PostgreSQL, not PGlite: five processes running PGlite's initdb at once on a loaded 2-core machine took minutes
  const [oracleDatabase, ledgerDatabase] = [await createTestDatabase(), await createTestDatabase()];
  // everything starts at once (the oracle on a port picked first, so the gateway knows its URL)
  const oracleUrl = `http://127.0.0.1:${await freePort()}`;
  const oracleArgs = ['oracle', ...chainFlags, '--pool', contracts.rewardPool, '--oracle-key', keyOf(oracle!), '--payers', gatewayAccount!.address, '--port', new URL(oracleUrl).port, '--database-url', oracleDatabase, '--close-grace', String(CLOSE_GRACE_SECONDS), '--close-interval', '1'];
  let [oracleProcess, , , , gateway] = await Promise.all([
    start('oracle', oracleArgs),
    ...SPANS.map((blocks, i) => start(`serve ${blocks}`, ['serve', '--model', STORIES_GGUF, '--blocks', blocks, '--bootstrap', bootstrap, '--threads', '1', '--private-key', keyOf(servers[i]!), ...chainFlags, '--register', '--public-name', `payout-${i}`])),
    start('gateway', ['gateway', '--bootstrap', bootstrap, '--model', STORIES_GGUF, '--port', '0', '--threads', '1', '--api-keys', keysFile, '--database-url', ledgerDatabase, '--private-key', keyOf(gatewayAccount!), '--chain-id', String(anvil.publicClient.chain!.id), '--reward-pool', contracts.rewardPool, '--oracle-url', oracleUrl]),
  ]);
  step('oracle, servers and gateway ready');
  const url = gateway.readyLine.trim().slice('ready '.length);
  const auth = { authorization: `Bearer ${ADMIN_KEY}` };
  for (const deadline = Date.now() + 120_000; !(await fetch(`${url}/health`)).ok; ) {
    if (Date.now() > deadline) throw new Error(`the gateway never became healthy:\n${gateway.stderr().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  step('gateway healthy');
  const startupMs = Date.now() - began;

  // traffic: requests of different lengths, one after another
  const requestIds: string[] = [];
  const trafficStarted = Date.now();
  for (const [i, maxTokens] of [24, 40, 16].entries()) {
    const requestId = `payout-${i}`;
    const response = await fetch(`${url}/inference/generate`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: maxTokens, temperature: 0, request_id: requestId }) });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('"done":true');
    requestIds.push(requestId);
  }

  step('traffic done');
  // receipted work per server, from the gateway's ledger: Σ tokens × blocks over its contributions
  const work = new Map<string, bigint>(servers.map((s) => [s.address.toLowerCase(), 0n]));
  for (const id of requestIds) {
    const { request, node_contributions: contributions } = await getJson(`${url}/v1/usage/${id}`, auth);
    expect(request.status).toBe('completed');
    for (const c of contributions) {
      expect(c.eth_address, 'every contribution comes from a verified address').not.toBeNull();
      const address = c.eth_address.toLowerCase();
      work.set(address, work.get(address)! + BigInt(c.prompt_tokens + c.generated_tokens + c.replayed_tokens) * BigInt(c.block_end - c.block_start));
    }
  }
  expect([...work.values()].every((w) => w > 0n)).toBe(true);

  // the receipts' epochs: every epoch from the traffic's start to now; each one holding receipts gets reported
  const { genesis, epochDuration } = { genesis: await pool.read.genesis(), epochDuration: await pool.read.epochDuration() };
  const epochAt = (ms: number) => (BigInt(Math.floor(ms / 1000)) - genesis) / epochDuration;
  const trafficEpochs: bigint[] = [];
  for (let e = epochAt(trafficStarted); e <= epochAt(Date.now()); e++) trafficEpochs.push(e);

  // Once the oracle has accepted every receipt, it is SIGKILLed and restarted on its database: what it accepted
  // before must all be counted at the close (asserted below, against the ledger).
  const acceptedWork = async () => {
    const total = new Map<string, bigint>();
    for (const e of trafficEpochs) for (const node of (await getJson(`${oracleUrl}/v1/epochs/${e}`)).nodes) total.set(node.address, (total.get(node.address) ?? 0n) + BigInt(node.blockTokens));
    return total;
  };
  for (const deadline = Date.now() + 60_000; !isDeepStrictEqual(await acceptedWork(), work); await new Promise((resolve) => setTimeout(resolve, 250))) {
    if (Date.now() > deadline) throw new Error(`the oracle never accepted every receipt:\n${oracleProcess.stderr().slice(-3000)}`);
  }
  oracleProcess.kill();
  await oracleProcess.exited;
  oracleProcess = await start('oracle (restarted)', oracleArgs);
  step('oracle SIGKILLed after accepting every receipt, and restarted');
  const waitStarted = Date.now();
  const reports: any[] = [];
  for (const epoch of trafficEpochs) {
    const closesAt = Number(genesis + (epoch + 1n) * epochDuration) * 1000 + CLOSE_GRACE_SECONDS * 1000;
    for (;;) {
      const report = await getJson(`${oracleUrl}/v1/epochs/${epoch}`);
      if (report.status === 'reported') {
        reports.push(report);
        break;
      }
      if (report.nodes.length === 0 && Date.now() > closesAt + 5_000) break; // no receipts fell in it
      if (Date.now() > closesAt + 60_000) throw new Error(`epoch ${epoch} was not reported: ${JSON.stringify(report)}\n${oracleProcess.stderr().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  step('epochs reported');
  const epochWaitMs = Date.now() - waitStarted;
  expect(reports.length).toBeGreaterThan(0);

  // the oracle counted exactly the ledger's work (no metrics were sent, so every uptime weight is the 0.5 floor)
  const oracleWork = new Map<string, bigint>();
  for (const report of reports) for (const node of report.nodes) oracleWork.set(node.address, (oracleWork.get(node.address) ?? 0n) + BigInt(node.blockTokens));
  expect(oracleWork).toEqual(work);

  // each server claims with the CLI
  const before = new Map<string, bigint>();
  for (const s of servers) before.set(s.address, await anvil.publicClient.getBalance({ address: s.address }));
  // the three claim at once, each with its own key
  const claims = await Promise.all(servers.map((s) => runCorolla(['rewards', 'claim', '--rpc-url', anvil!.rpcUrl, '--reward-pool', contracts.rewardPool, '--oracle-url', oracleUrl], { env: { COROLLA_PRIVATE_KEY: keyOf(s) }, timeoutMs: 60_000 })));
  for (const { code, stdout, stderr } of claims) {
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^epoch \d+ [0-9.]+ ETH 0x[0-9a-f]{64}$/m);
  }
  const claimed = await anvil.publicClient.getLogs({ address: contracts.rewardPool, event: parseAbiItem('event RewardClaimed(uint256 indexed epoch, address indexed account, uint256 amount, uint256 contribution)'), fromBlock: 0n, strict: true });
  const rolled = await anvil.publicClient.getLogs({ address: contracts.rewardPool, event: parseAbiItem('event EpochReported(uint256 indexed epoch, bytes32 merkleRoot, uint256 totalRewards, uint256 totalContribution, uint256 rolledOver, uint256 rolledOverTo)'), fromBlock: 0n, strict: true });

  const figures: string[] = [];
  for (const report of reports) {
    const epoch = BigInt(report.epoch);
    const budget = (await pool.read.getEpoch([epoch])).budget;
    expect(BigInt(report.budget)).toBe(budget);
    const paid = claimed.filter((log) => log.args.epoch === epoch);
    expect(paid).toHaveLength(report.nodes.length);
    const payouts = paid.reduce((sum, log) => sum + log.args.amount, 0n);
    // Σ payouts + dust = budget exactly; the dust is what the pool rolled over at the report
    const dust = BigInt(report.dust);
    expect(payouts + dust).toBe(budget);
    expect(rolled.find((log) => log.args.epoch === epoch)!.args.rolledOver).toBe(dust);
    expect(dust).toBeLessThan(BigInt(report.nodes.length));
    // each payout within 1% of its share of the epoch's receipted work
    const epochWork = new Map<string, bigint>(report.nodes.map((n: any) => [n.address, BigInt(n.blockTokens)]));
    const total = [...epochWork.values()].reduce((a, b) => a + b, 0n);
    for (const log of paid) {
      const expected = Number((budget * epochWork.get(log.args.account.toLowerCase())!) / total);
      const deviation = Math.abs(Number(log.args.amount) - expected) / expected;
      expect(deviation).toBeLessThan(0.01);
      figures.push(`epoch ${epoch} ${log.args.account}: ${log.args.amount} wei, expected ${expected}, deviation ${deviation.toExponential(2)}`);
    }
    figures.push(`epoch ${epoch}: budget ${budget}, paid ${payouts}, dust ${dust}`);
  }
  // the claims moved real money: each balance rose (the reward exceeds the claim's gas)
  for (const s of servers) expect(await anvil.publicClient.getBalance({ address: s.address })).toBeGreaterThan(before.get(s.address)!);
  console.log(`${figures.join('\n')}\nstartup ${startupMs} ms, waiting for the epoch ${epochWaitMs} ms, total ${Date.now() - began} ms`);
}, 1_500_000);
