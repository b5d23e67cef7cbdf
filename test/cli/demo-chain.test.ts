// runs alone: starts computing processes or measures time (vitest.config.ts)
/**
 * `corolla demo --chain --once`: the newcomer's view of the incentives. Besides the swarm and the gateway it starts
 * anvil, deploys the contracts, registers each server under its own key, starts an oracle, closes an epoch, claims,
 * and prints each server's reward beside the tokens it served; the rewards follow tokens × blocks.
 */
import { afterAll, expect, it } from 'vitest';
import { parseEther } from 'viem';
import { killCorollaProcesses, runCorolla } from '../support/cli.js';
import { tempDir } from '../support/files.js';

afterAll(killCorollaProcesses);

it('starts a chain and an oracle, closes an epoch and prints each server reward beside its work, the rewards in proportion to it', async () => {
  const began = Date.now();
  const { code, stdout, stderr } = await runCorolla(['demo', '--chain', '--once', '--port', '0', '--servers', '2', '--max-tokens', '24', '--temperature', '0', '--epoch-seconds', '15', '--data-dir', tempDir('corolla-demo-chain-')], {
    timeoutMs: 780_000,
  });
  expect(code, stderr).toBe(0);
  expect(stdout.startsWith('Once upon a time')).toBe(true);
  // progress while it starts
  expect(stderr).toMatch(/^anvil: http:\/\/127\.0\.0\.1:\d+ \(chain 31337; accounts from anvil's public dev mnemonic: for a local demo only\)$/m);
  expect(stderr).toMatch(/^contracts: AgentRegistry 0x[0-9a-fA-F]{40}, RewardPool 0x[0-9a-fA-F]{40}/m);
  expect(stderr).toMatch(/^oracle: http:\/\/127\.0\.0\.1:\d+$/m);
  expect(stderr.match(/\(registered as 0x[0-9a-fA-F]{40}\)/g)).toHaveLength(2);

  // the table: one row per server, its reward in proportion to its tokens × blocks
  const epoch = /^epoch \d+: budget ([0-9.]+) ETH, paid ([0-9.]+) ETH, rounding dust (\d+) wei/m.exec(stderr);
  expect(epoch, stderr).not.toBeNull();
  expect(stderr).toMatch(/server\s+blocks\s+address\s+tokens served\s+tokens × blocks\s+reward \(ETH\)/);
  const rows = [...stderr.matchAll(/^ {2}(demo-\d)\s+(\d+):(\d+)\s+0x[0-9a-f]{8}…\s+(\d+)\s+(\d+)\s+([0-9.]+)$/gm)];
  expect(rows.map((r) => r[1])).toEqual(['demo-0', 'demo-1']);
  const budget = parseEther(epoch![1]!);
  const work = rows.map((r) => BigInt(r[5]!));
  const total = work.reduce((a, b) => a + b, 0n);
  for (const [i, row] of rows.entries()) {
    expect(BigInt(row[4]!) * BigInt(Number(row[3]) - Number(row[2]))).toBe(work[i]);
    expect(BigInt(row[4]!)).toBeGreaterThan(0n);
    const expected = Number((budget * work[i]!) / total);
    expect(Math.abs(Number(parseEther(row[6]!)) - expected) / expected).toBeLessThan(0.01);
  }
  expect(parseEther(epoch![2]!) + BigInt(epoch![3]!)).toBe(budget);
  expect(stderr).toMatch(/each server claimed its reward from the RewardPool with its own key: [0-9.]+ ETH in all/);
  console.log(`demo --chain took ${Date.now() - began} ms\n${stderr.slice(stderr.indexOf('epoch ', stderr.indexOf('waiting for epoch')))}`);
}, 800_000);
