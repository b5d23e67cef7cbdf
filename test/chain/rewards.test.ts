/**
 * A node's rewards on a real anvil chain (src/chain/rewards.ts): the oracle's claims checked against the on-chain
 * root, claims that pay exactly the amount once, proofs that do not match refused without a transaction, an
 * unreachable or garbled oracle as a typed error, and the auto-claim threshold.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseEther, type Address, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidRewardProofError, OracleUnavailableError } from '../../src/chain/errors.js';
import { claimableRewards, claimRewards, httpRewardOracle, startAutoClaim, type ClaimOutcome } from '../../src/chain/rewards.js';
import { startAnvil, type Anvil } from '../support/anvil.js';
import { rewardedNode, type RewardedNode } from '../support/rewards.js';

let anvil: Anvil;
let setup: RewardedNode;
let node: Anvil['accounts'][number];
let other: Anvil['accounts'][number];
let pool: Address;

beforeAll(async () => {
  anvil = await startAnvil();
  node = anvil.accounts[3]!;
  other = anvil.accounts[4]!;
  setup = await rewardedNode(anvil, node, other.address);
  pool = setup.contracts.rewardPool;
});
afterAll(async () => {
  await setup?.stop();
  anvil?.stop();
});

const oracle = () => httpRewardOracle(setup.oracleUrl);
const clients = (account: Anvil['accounts'][number]) => {
  const { publicClient, walletClient } = anvil.clientsFor(account);
  return { publicClient, walletClient };
};
const nonce = (address: Address) => anvil.publicClient.getTransactionCount({ address });

describe('claimableRewards', () => {
  it("checks the oracle's claims on chain: the node's reported, unclaimed leaf is pending for its amount", async () => {
    const checked = await claimableRewards(anvil.publicClient, pool, node.address, oracle());
    const { epoch, amount, contribution } = setup.leaf;
    expect(checked).toEqual([{ epoch, amount, contribution, proof: setup.tree.proof(node.address), state: 'pending', pending: parseEther('1.25') }]);
  });

  it('an unreachable oracle, or one answering garbage, is an OracleUnavailableError', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    await expect(claimableRewards(anvil.publicClient, pool, node.address, httpRewardOracle(url))).rejects.toThrow(OracleUnavailableError);
    const garbled = httpRewardOracle('http://oracle.invalid', { fetch: async () => Response.json({ claimable: [{ epoch: 1, amount: '1', contribution: '1', proof: [] }] }) });
    await expect(garbled.rewards(node.address)).rejects.toThrow(/epoch is not a decimal string/);
  });
});

describe('claimRewards', () => {
  it('--dry-run sends nothing', async () => {
    const before = await nonce(node.address);
    const outcomes = await claimRewards(clients(node), pool, oracle(), { dryRun: true });
    expect(outcomes.map((o) => [o.epoch, o.state, o.txHash])).toEqual([[setup.leaf.epoch, 'pending', undefined]]);
    expect(await nonce(node.address)).toBe(before);
  });

  it('pays exactly the amount (net of gas), once; a second claim sends nothing', async () => {
    const before = await anvil.publicClient.getBalance({ address: node.address });
    const [outcome, ...more] = await claimRewards(clients(node), pool, oracle());
    expect(more).toEqual([]);
    expect(outcome).toMatchObject({ epoch: setup.leaf.epoch, amount: parseEther('1.25'), state: 'claimed', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) });
    expect(outcome!.error).toBeUndefined();
    const receipt = await anvil.publicClient.getTransactionReceipt({ hash: outcome!.txHash! });
    const after = await anvil.publicClient.getBalance({ address: node.address });
    expect(after - before + receipt.gasUsed * receipt.effectiveGasPrice).toBe(parseEther('1.25'));

    const sent = await nonce(node.address);
    const again = await claimRewards(clients(node), pool, oracle());
    expect(again).toEqual([expect.objectContaining({ state: 'claimed', pending: 0n })]);
    expect(again[0]!.txHash).toBeUndefined();
    expect(await nonce(node.address)).toBe(sent);
    expect(await anvil.publicClient.getBalance({ address: node.address })).toBe(after);
  });

  it('refuses, without a transaction, a proof that does not lead to the on-chain root', async () => {
    const leaf = setup.tree.leaves.find((l) => l.account === other.address)!;
    const proof = setup.tree.proof(other.address);
    setup.answers.set(other.address.toLowerCase(), {
      claimable: [
        { ...leaf, amount: leaf.amount + 1n, proof }, // inflated amount
        { ...leaf, proof: [`0x${'ab'.repeat(32)}` as Hex] }, // forged proof
      ],
    });
    const before = await nonce(other.address);
    const outcomes: ClaimOutcome[] = await claimRewards(clients(other), pool, oracle());
    expect(outcomes.map((o) => [o.state, o.pending, o.txHash])).toEqual([
      ['invalid-proof', 0n, undefined],
      ['invalid-proof', 0n, undefined],
    ]);
    for (const o of outcomes) expect(o.error).toBeInstanceOf(InvalidRewardProofError);
    expect(await nonce(other.address)).toBe(before);
    // the true proof still claims
    setup.answers.set(other.address.toLowerCase(), { claimable: [{ ...leaf, proof }] });
    expect((await claimRewards(clients(other), pool, oracle()))[0]).toMatchObject({ state: 'claimed', amount: leaf.amount });
  });
});

describe('startAutoClaim', () => {
  it('claims once the pending reward reaches the threshold, not before', async () => {
    const earner = anvil.accounts[5]!;
    const tree = await setup.reportEpoch((epoch) => [{ account: earner.address, epoch, amount: parseEther('0.3'), contribution: 10n }]);
    setup.answers.set(earner.address.toLowerCase(), { claimable: [{ ...tree.leaves[0]!, proof: tree.proof(earner.address) }] });
    const rounds = (thresholdWei: bigint) =>
      new Promise<{ pending: bigint; outcomes: readonly ClaimOutcome[] }>((resolve, reject) => {
        const auto = startAutoClaim(clients(earner), pool, oracle(), {
          thresholdWei,
          intervalMs: 20,
          onRound: (result) => {
            auto.stop();
            if ('error' in result) reject(result.error);
            else resolve(result);
          },
        });
      });
    expect(await rounds(parseEther('0.5'))).toEqual({ pending: parseEther('0.3'), outcomes: [] });
    const claimed = await rounds(parseEther('0.3'));
    expect(claimed.outcomes).toEqual([expect.objectContaining({ state: 'claimed', amount: parseEther('0.3'), txHash: expect.any(String) })]);
    expect(await rounds(parseEther('0.3'))).toEqual({ pending: 0n, outcomes: [] });
  });
});
