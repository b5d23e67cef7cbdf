import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import { hashTypedData } from 'viem';
import { RECEIPT_TYPES } from '../../src/chain/receipts.js';
import { MAX_BATCH_ITEMS } from '../../src/oracle/defaults.js';
import { verifyRewardProof } from '../../src/chain/merkle.js';
import { DOMAIN, EPOCH_MS, GENESIS, harness, metrics, payer, receipt, servers, signedMetrics, signedReceipt, stranger, type Harness } from './fixtures.js';

const [a, b, c] = servers.map((s) => s.address.toLowerCase() as `0x${string}`) as [`0x${string}`, `0x${string}`, `0x${string}`];

describe('OracleService', { timeout: 60_000 }, () => {
  let h: Harness;
  beforeEach(async () => (h = await harness()));
  afterEach(async () => h.close());

  it('accepts receipts signed by a known payer for active servers', async () => {
    const result = await h.service.acceptReceipts([await signedReceipt(receipt(a)), await signedReceipt(receipt(b))]);
    expect(result).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect((await h.service.epochReport(0n)).nodes.map((n) => n.address)).toEqual([a, b].sort());
  });

  it('rejects forged, tampered, unknown-payer, inactive-server, future and stale receipts, each with its reason', async () => {
    const tampered = (await signedReceipt(receipt(a))) as { message: { generatedTokens: string } };
    tampered.message.generatedTokens = '2000';
    const badSignature = (await signedReceipt(receipt(a))) as { signature: string };
    badSignature.signature = `0x${'00'.repeat(65)}`;
    h.registry.inactive.add(c);
    const result = await h.service.acceptReceipts([
      await signedReceipt(receipt(a), stranger),
      tampered,
      badSignature,
      await signedReceipt(receipt(c)),
      await signedReceipt(receipt(a, { issuedAt: BigInt(h.clock.now + 10 * 60_000) })),
      await signedReceipt(receipt(a, { issuedAt: BigInt(h.clock.now - EPOCH_MS - 1) })),
      { message: { sessionId: 's' }, signature: '0x12' },
      'not an object',
      await signedReceipt(receipt(a, { blockStart: 5, blockEnd: 5 })),
    ]);
    expect(result.accepted).toBe(0);
    const reasons = result.rejected.map((r) => `${r.index}: ${r.reason}`);
    expect(reasons[0]).toMatch(/^0: signed by 0x[0-9a-f]{40}, not a known payer/);
    expect(reasons[1]).toMatch(/^1: signed by .* not a known payer/); // a tampered message recovers some other address
    expect(reasons[2]).toBe('2: invalid signature');
    expect(reasons[3]).toMatch(/^3: server .* is not active in the registry/);
    expect(reasons[4]).toMatch(/^4: issuedAt is in the future/);
    expect(reasons[5]).toMatch(/^5: issuedAt is older than/);
    expect(reasons[6]).toMatch(/^6: malformed: message\./);
    expect(reasons[7]).toMatch(/^7: malformed: \(item\)/);
    expect(reasons[8]).toMatch(/^8: malformed: message\.blockEnd: blockEnd must be greater/);
  });

  it('counts a replayed receipt as a duplicate and rejects and reports a different one under the same key', async () => {
    const first = receipt(a);
    const signed = await signedReceipt(first);
    expect(await h.service.acceptReceipts([signed])).toMatchObject({ accepted: 1 });
    expect(await h.service.acceptReceipts([signed, signed])).toEqual({ accepted: 0, duplicates: 2, rejected: [] });
    const inflated = await signedReceipt({ ...first, generatedTokens: 999n });
    const result = await h.service.acceptReceipts([inflated]);
    expect(result.rejected[0]!.reason).toMatch(/^conflict: a different receipt/);
    const report = await h.service.epochReport(0n);
    expect(report.conflicts).toHaveLength(1);
    expect(report.conflicts[0]).toMatchObject({ kind: 'receipt', signer: payer.address.toLowerCase(), existingDigest: hashTypedData({ domain: DOMAIN, types: RECEIPT_TYPES, primaryType: 'Receipt', message: first }) });
    expect(report.nodes[0]!.blockTokens).toBe(30n * 4n); // the first receipt's work only
  });

  it('rejects an oversized batch as a whole', async () => {
    await expect(h.service.acceptReceipts(new Array(MAX_BATCH_ITEMS + 1).fill({}))).rejects.toMatchObject({ code: 'REQUEST_TOO_LARGE' });
  });

  it('takes metrics only from the server itself, flags claims above the receipts and never pays the excess', async () => {
    await h.service.acceptReceipts([await signedReceipt(receipt(a)), await signedReceipt(receipt(b))]);
    const honest = await h.service.acceptMetrics([await signedMetrics(metrics(a, { tokensServed: 30n }), servers[0])]);
    expect(honest).toEqual({ accepted: 1, duplicates: 0, rejected: [], flagged: [] });
    const notItself = await h.service.acceptMetrics([await signedMetrics(metrics(b), servers[0])]);
    expect(notItself.rejected[0]!.reason).toMatch(/not by the server/);
    const spanning = await h.service.acceptMetrics([await signedMetrics(metrics(b, { periodStart: BigInt(GENESIS - 1000) }), servers[1])]);
    expect(spanning.rejected[0]!.reason).toMatch(/older than|spans more than one epoch/);
    const inflated = await h.service.acceptMetrics([await signedMetrics(metrics(b, { tokensServed: 500n, uptimeSeconds: 3600n }), servers[1])]);
    expect(inflated.flagged).toEqual([{ index: 0, excess: '470' }]);

    const report = await h.service.epochReport(0n);
    expect(report.flagged).toEqual([expect.objectContaining({ server: b, claimedTokens: 500n, receiptedTokens: 30n, excess: 470n })]);
    const [nodeA, nodeB] = [report.nodes.find((n) => n.address === a)!, report.nodes.find((n) => n.address === b)!];
    // a: 540 s up of the 540 s since the epoch began, at a 3600 s epoch → 0.5 + 0.5·540/3600 = 0.575
    expect(nodeA.uptimeWeightPpm).toBe(575_000n);
    // b's inflated metrics are not trusted for uptime either: the floor, and its tokens are the receipts' only
    expect(nodeB.uptimeWeightPpm).toBe(500_000n);
    expect(nodeB.contribution).toBe(60n);
    expect(nodeA.contribution).toBe(69n);
  });

  it('closes an epoch: rewards pro rata, Σ rewards + dust = budget, proofs verify, reported once even when asked again', async () => {
    await h.service.acceptReceipts([
      await signedReceipt(receipt(a, { generatedTokens: 100n })),
      await signedReceipt(receipt(b, { generatedTokens: 200n })),
      await signedReceipt(receipt(c, { generatedTokens: 300n, blockStart: 4, blockEnd: 6 })),
    ]);
    await expect(h.service.closeEpoch(0n)).rejects.toMatchObject({ name: 'EpochNotEndedError' });
    h.pool.budget = 1000n;
    h.clock.now = GENESIS + EPOCH_MS + 5 * 60_000;
    const [report, again] = await Promise.all([h.service.closeEpoch(0n), h.service.closeEpoch(0n)]);
    expect(again).toEqual(report);
    expect(report.status).toBe('reported');
    expect(h.pool.reports).toHaveLength(1);
    const contributions = report.nodes.map((n) => n.contribution);
    expect(contributions).toEqual(report.nodes.map((n) => ((n.address === c ? 310n * 2n : n.address === a ? 110n * 4n : 210n * 4n) * 500_000n) / 1_000_000n));
    const total = contributions.reduce((x, y) => x + y, 0n);
    for (const node of report.nodes) {
      expect(node.amount).toBe((1000n * node.contribution) / total);
      expect(verifyRewardProof(report.root!, { account: node.address, epoch: 0n, amount: node.amount!, contribution: node.contribution }, node.proof!)).toBe(true);
    }
    expect(report.totalRewards! + report.dust!).toBe(1000n);
    expect(h.pool.reports[0]).toEqual({ epoch: 0n, root: report.root, totalRewards: report.totalRewards, totalContribution: total });
    expect(await h.service.closeEpoch(0n)).toEqual(report);
    expect(h.pool.reports).toHaveLength(1);
    const late = await h.service.acceptReceipts([await signedReceipt(receipt(a, { issuedAt: BigInt(GENESIS + 50 * 60_000) }))]);
    expect(late.rejected[0]!.reason).toBe('epoch 0 is already closed');
    expect(await h.service.claimable(servers[0].address)).toEqual([{ epoch: 0n, amount: report.nodes.find((n) => n.address === a)!.amount, contribution: contributions[report.nodes.findIndex((n) => n.address === a)], proof: report.nodes.find((n) => n.address === a)!.proof }]);
  });

  it('loses no accepted report across a restart mid-epoch, and a close cut off before its report resumes with the stored root', async () => {
    await h.service.acceptReceipts([await signedReceipt(receipt(a)), await signedReceipt(receipt(b, { generatedTokens: 70n }))]);
    await h.service.acceptMetrics([await signedMetrics(metrics(a, { tokensServed: 30n }), servers[0])]);
    const before = await h.service.epochReport(0n);
    await h.restart();
    await h.service.acceptReceipts([await signedReceipt(receipt(c))]);
    const after = await h.service.epochReport(0n);
    expect(after.nodes.filter((n) => n.address !== c)).toEqual(before.nodes);
    expect(after.totalContribution).toBe(before.totalContribution + after.nodes.find((n) => n.address === c)!.contribution);

    h.clock.now = GENESIS + EPOCH_MS + 5 * 60_000;
    h.pool.failNext = true;
    await expect(h.service.closeEpoch(0n)).rejects.toThrow('rpc down');
    const submitting = await h.service.epochReport(0n);
    expect(submitting.status).toBe('submitting');
    await h.restart();
    const reported = await h.service.closeEpoch(0n);
    expect(reported).toMatchObject({ status: 'reported', root: submitting.root, totalContribution: after.totalContribution });
    expect(h.pool.reports).toHaveLength(1);
    expect(await h.service.closeDueEpochs()).toEqual([]);
  });

  it('a close cut off after its report was mined (hash never stored) resumes by finding the report on chain, not by failing on the guard', async () => {
    await h.service.acceptReceipts([await signedReceipt(receipt(a)), await signedReceipt(receipt(b))]);
    h.clock.now = GENESIS + EPOCH_MS + 5 * 60_000;
    h.pool.loseNextAnswer = true;
    await expect(h.service.closeEpoch(0n)).rejects.toThrow('connection reset');
    expect((await h.service.epochReport(0n)).status).toBe('submitting');
    await h.restart();
    const reported = await h.service.closeEpoch(0n);
    expect(reported).toMatchObject({ status: 'reported', root: h.pool.reports[0]!.root, txHash: (await h.pool.reportedEpoch(0n))!.txHash });
    expect(h.pool.reports).toHaveLength(1);
  });

  it('refuses to mark an epoch reported when the chain holds a different root for it', async () => {
    await h.service.acceptReceipts([await signedReceipt(receipt(a))]);
    h.pool.reports.push({ epoch: 0n, root: `0x${'cd'.repeat(32)}`, totalRewards: 1n, totalContribution: 1n });
    h.clock.now = GENESIS + EPOCH_MS + 5 * 60_000;
    await expect(h.service.closeEpoch(0n)).rejects.toThrow(/already reported on chain with root 0xcdcd/);
    expect((await h.service.epochReport(0n)).status).toBe('submitting');
  });

  it('closes due epochs on its own, skipping the current one', async () => {
    await h.service.acceptReceipts([await signedReceipt(receipt(a))]);
    h.clock.now = GENESIS + EPOCH_MS + 10 * 60_000;
    await h.service.acceptReceipts([await signedReceipt(receipt(b, { issuedAt: BigInt(h.clock.now - 1000) }))]);
    const closed = await h.service.closeDueEpochs();
    expect(closed.map((r) => r.epoch)).toEqual([0n]);
    expect((await h.service.epochReport(1n)).status).toBe('open');
  });
});
