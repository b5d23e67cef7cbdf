/**
 * The oracle: takes payer-signed receipts and server-signed metrics, keeps what passes every check, aggregates each
 * epoch with the one formula of formula.ts, and reports the epoch's Merkle root to the RewardPool.
 *
 * Checks, in order, for each item: its shape (messages.ts), its EIP-712 signature under this deployment's domain, its
 * signer (a receipt: a configured payer; metrics: the server itself), its time (not ahead of the clock, not older
 * than the window, its epoch not closed), the server's registration (active), then its key: the same report again
 * is a duplicate, a different one under a taken key a conflict (rejected and recorded).
 */
import { hashTypedData, zeroHash, type Address, type Hex, type TypedDataDomain } from 'viem';
import { NODE_METRICS_TYPES, RECEIPT_TYPES, nodeMetricsSigner, receiptDomain, receiptSigner } from '../chain/receipts.js';
import { spotCheckReportSigner } from '../chain/evidence.js';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import { DEFAULT_CLOSE_GRACE_MS, DEFAULT_MAX_CLOCK_SKEW_MS, MAX_BATCH_ITEMS } from './defaults.js';
import { BatchTooLargeError, EpochNotEndedError, EpochReportedElsewhereError, InvalidReportError } from './errors.js';
import { allocate, contribution, receiptBlockTokens, uptimeWeightPpm } from './formula.js';
import { RewardTree } from '../chain/merkle.js';
import { parseItem, signedEvidenceSchema, signedMetricsSchema, signedReceiptSchema, type SignedMetrics, type SignedReceipt } from './messages.js';
import { verifyEvidence } from './evidence.js';
import type { FlaggedJson } from './schema.js';
import type { MetricsRow, OracleStore, ReceiptRow, RewardRow } from './store.js';
import type { BatchResult, Claimable, EpochReport, EvidenceResult, FlaggedMetrics, NodeReward, RegistryReader, RegistrySlasher, RewardPoolWriter } from './types.js';

export interface OracleSettings {
  /** The deployment the signatures are bound to (the EIP-712 domain). */
  readonly chainId: number;
  readonly rewardPool: Address;
  /** Gateways and clients whose receipts count. */
  readonly payers: readonly Address[];
  /** Epoch n covers [genesisMs + n·epochDurationMs, genesisMs + (n+1)·epochDurationMs), as the RewardPool counts them. */
  readonly genesisMs: number;
  readonly epochDurationMs: number;
  /** Reports signed longer ago than this are refused (default: one epoch). */
  readonly maxReportAgeMs?: number;
  readonly maxClockSkewMs?: number;
  /** An epoch may close this long after it ends (late receipts are still taken until then). */
  readonly closeGraceMs?: number;
}

export interface OracleComponents {
  readonly store: OracleStore;
  readonly registry: RegistryReader;
  readonly pool: RewardPoolWriter;
  /** With a key holding the registry's VERIFIER_ROLE: suspects of accepted evidence are slashed. Without: kept for the admin. */
  readonly slasher?: RegistrySlasher;
  readonly logger?: ComponentLogger;
  /** The clock (unix ms); tests move it. */
  readonly now?: () => number;
}

export interface MetricsBatchResult extends BatchResult {
  /** Accepted metrics claiming more tokens than the receipts so far show (re-checked at close). */
  readonly flagged: readonly { readonly index: number; readonly excess: string }[];
}

interface Computed {
  readonly nodes: NodeReward[];
  readonly flagged: FlaggedMetrics[];
}

export class OracleService {
  private readonly domain: TypedDataDomain;
  private readonly payers: ReadonlySet<string>;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly maxAgeMs: number;
  private readonly skewMs: number;
  private readonly graceMs: number;
  /** One close at a time per epoch in this process. */
  private readonly closing = new Map<number, Promise<EpochReport>>();
  private readonly pendingSlashes = new Set<Promise<void>>();

  constructor(
    private readonly settings: OracleSettings,
    private readonly components: OracleComponents,
  ) {
    this.domain = receiptDomain(settings.chainId, settings.rewardPool);
    this.payers = new Set(settings.payers.map((payer) => payer.toLowerCase()));
    this.now = components.now ?? Date.now;
    this.log = (components.logger ?? silentLogger).forComponent('corolla:oracle');
    this.maxAgeMs = settings.maxReportAgeMs ?? settings.epochDurationMs;
    this.skewMs = settings.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    this.graceMs = settings.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
  }

  epochAt(ms: number): number {
    return Math.floor((ms - this.settings.genesisMs) / this.settings.epochDurationMs);
  }

  currentEpoch(): number {
    return this.epochAt(this.now());
  }

  epochStart(epoch: number): number {
    return this.settings.genesisMs + epoch * this.settings.epochDurationMs;
  }

  async acceptReceipts(items: readonly unknown[]): Promise<BatchResult> {
    checkBatch('receipts', items);
    const active = this.activeCache();
    const result = { accepted: 0, duplicates: 0, rejected: [] as { index: number; reason: string }[] };
    for (const [index, item] of items.entries()) {
      const outcome = await this.acceptReceipt(item, active);
      if (outcome === 'accepted') result.accepted++;
      else if (outcome === 'duplicate') result.duplicates++;
      else result.rejected.push({ index, reason: outcome.reason });
    }
    this.log('receipts: %d accepted, %d duplicates, %d rejected', result.accepted, result.duplicates, result.rejected.length);
    return result;
  }

  async acceptMetrics(items: readonly unknown[]): Promise<MetricsBatchResult> {
    checkBatch('metrics', items);
    const active = this.activeCache();
    const result = { accepted: 0, duplicates: 0, rejected: [] as { index: number; reason: string }[], flagged: [] as { index: number; excess: string }[] };
    for (const [index, item] of items.entries()) {
      const outcome = await this.acceptOneMetrics(item, active);
      if (outcome === 'duplicate') result.duplicates++;
      else if ('reason' in outcome) result.rejected.push({ index, reason: outcome.reason });
      else {
        result.accepted++;
        if (outcome.excess > 0n) result.flagged.push({ index, excess: outcome.excess.toString() });
      }
    }
    return result;
  }

  /** The epoch's totals: stored results once its close began, else a preview of contributions (no amounts). */
  async epochReport(epochNumber: bigint): Promise<EpochReport> {
    const epoch = Number(epochNumber);
    const stored = await this.components.store.epoch(epoch);
    const conflicts = (await this.components.store.conflicts(epoch)).map(({ id: _, epoch: __, ...conflict }) => conflict);
    const excluded = await this.excluded(epoch);
    const span = { epoch: epochNumber, startsAt: this.epochStart(epoch), endsAt: this.epochStart(epoch + 1), excluded: [...excluded] };
    if (!stored) {
      const { nodes, flagged } = await this.compute(epoch);
      const totalContribution = nodes.reduce((sum, node) => sum + node.contribution, 0n);
      return { ...span, status: 'open', totalContribution, nodes, flagged, conflicts };
    }
    const { row, rewards } = stored;
    return {
      ...span,
      status: row.status,
      budget: row.budget,
      totalContribution: row.totalContribution,
      totalRewards: row.totalRewards,
      dust: row.dust,
      root: row.root,
      ...(row.txHash ? { txHash: row.txHash } : {}),
      nodes: rewards.map(({ epoch: _, ...node }) => node),
      flagged: row.flagged.map(fromFlaggedJson),
      conflicts,
    };
  }

  /** The address's rewards in reported epochs, each with what claimReward needs. */
  async claimable(address: Address): Promise<Claimable[]> {
    const rows = await this.components.store.claimable(address.toLowerCase() as Address);
    return rows.map((row) => ({ epoch: BigInt(row.epoch), amount: row.amount, contribution: row.contribution, proof: row.proof }));
  }

  /** What `corolla status` shows: receipts naming the address (tasks completed) and the uptime its latest metrics report. */
  async serverStats(address: Address): Promise<{ tasksCompleted: number; uptimeSeconds?: number }> {
    const stats = await this.components.store.serverStats(address.toLowerCase() as Address);
    return { tasksCompleted: stats.receipts, ...(stats.uptimeSeconds !== undefined ? { uptimeSeconds: Number(stats.uptimeSeconds) } : {}) };
  }

  /**
   * Closes an ended epoch: computes the rewards, stores them with the Merkle root and proofs (status `submitting`),
   * reports the root to the RewardPool, then records the transaction (`reported`). Idempotent: a reported epoch
   * is returned as stored; a `submitting` one (a report that failed or was cut off by a restart) is first looked up
   * on chain (already reported with the stored root: only the hash is recorded), else re-sent with the stored
   * values, never recomputed.
   */
  closeEpoch(epochNumber: bigint): Promise<EpochReport> {
    const epoch = Number(epochNumber);
    const running = this.closing.get(epoch);
    if (running) return running;
    const closing = this.close(epoch).finally(() => this.closing.delete(epoch));
    this.closing.set(epoch, closing);
    return closing;
  }

  /** Closes every ended epoch (past its grace) that holds receipts and is not reported yet; one failure does not stop the others. */
  async closeDueEpochs(): Promise<EpochReport[]> {
    const now = this.now();
    const closed: EpochReport[] = [];
    for (const epoch of await this.components.store.unfinishedEpochs(this.epochAt(now))) {
      if (now < this.epochStart(epoch + 1) + this.graceMs) continue;
      try {
        closed.push(await this.closeEpoch(BigInt(epoch)));
      } catch (error) {
        this.log.error('closing epoch %d failed: %s', epoch, (error as Error).message);
      }
    }
    return closed;
  }

  private async close(epoch: number): Promise<EpochReport> {
    const { store, pool } = this.components;
    let stored = await store.epoch(epoch);
    if (!stored) {
      const closesAt = this.epochStart(epoch + 1) + this.graceMs;
      if (this.now() < closesAt) throw new EpochNotEndedError(BigInt(epoch), closesAt);
      const budget = await pool.epochBudget(BigInt(epoch));
      const { nodes, flagged } = await this.compute(epoch);
      const allocation = allocate(budget, new Map(nodes.map((node) => [node.address, node.contribution])));
      // an epoch without receipts has no leaves: its root is zero and nobody can claim
      const tree = nodes.length > 0 ? new RewardTree(BigInt(epoch), nodes.map((node) => ({ account: node.address, epoch: BigInt(epoch), amount: allocation.rewards.get(node.address)!, contribution: node.contribution }))) : undefined;
      const rewards: RewardRow[] = nodes.map((node) => ({
        epoch,
        address: node.address,
        receipts: node.receipts,
        blockTokens: node.blockTokens,
        uptimeWeightPpm: node.uptimeWeightPpm,
        contribution: node.contribution,
        amount: allocation.rewards.get(node.address)!,
        proof: tree!.proof(node.address),
      }));
      const row = {
        epoch,
        status: 'submitting' as const,
        budget,
        totalContribution: allocation.totalContribution,
        totalRewards: allocation.totalRewards,
        dust: allocation.dust,
        root: tree?.root ?? zeroHash,
        txHash: null,
        flagged: flagged.map(toFlaggedJson),
        closedAt: new Date(this.now()),
        reportedAt: null,
      };
      if (await store.beginClose(row, rewards)) this.log('epoch %d closed: %d nodes, root %s, %s of %s paid, dust %s', epoch, nodes.length, tree?.root ?? zeroHash, allocation.totalRewards, budget, allocation.dust);
      stored = (await store.epoch(epoch))!;
    }
    const { row } = stored;
    if (row.status === 'submitting') {
      // a crash after the report was sent but before its hash was stored: the chain already holds it
      const onChain = await pool.reportedEpoch(BigInt(epoch));
      if (onChain && onChain.root !== row.root) throw new EpochReportedElsewhereError(BigInt(epoch), onChain.root, row.root);
      const txHash = onChain?.txHash ?? (await pool.reportEpoch(BigInt(epoch), row.root, row.totalRewards, row.totalContribution));
      await store.markReported(epoch, txHash, new Date(this.now()));
      this.log('epoch %d reported in %s%s', epoch, txHash, onChain ? ' (found on chain)' : '');
    }
    return this.epochReport(BigInt(epoch));
  }

  /** The formula over the epoch's stored receipts and metrics (formula.ts, docs/oracle.md). */
  private async compute(epoch: number): Promise<Computed> {
    const [receiptRows, metricsRows, excluded] = await Promise.all([this.components.store.receipts(epoch), this.components.store.metrics(epoch), this.excluded(epoch)]);
    const byServer = new Map<Address, ReceiptRow[]>();
    // a server caught returning wrong results (spot-check evidence in this epoch) is paid nothing for the epoch
    for (const row of receiptRows) if (!excluded.has(row.server)) byServer.set(row.server, [...(byServer.get(row.server) ?? []), row]);

    const flagged: FlaggedMetrics[] = [];
    /** Uptime within the epoch from each server's latest unflagged metrics (rows come ordered by periodEnd). */
    const uptime = new Map<Address, bigint>();
    const epochStart = this.epochStart(epoch);
    for (const m of metricsRows) {
      const receiptedTokens = receiptedTokensIn(byServer.get(m.server) ?? [], m.periodStart, m.periodEnd);
      if (m.tokensServed > receiptedTokens) {
        flagged.push({ server: m.server, periodStart: BigInt(m.periodStart), periodEnd: BigInt(m.periodEnd), claimedTokens: m.tokensServed, receiptedTokens, excess: m.tokensServed - receiptedTokens });
        continue;
      }
      // a node up for U seconds at periodEnd was up since periodEnd − U; only the part inside this epoch counts
      const sinceEpochStart = BigInt(Math.floor((m.periodEnd - epochStart) / 1000));
      uptime.set(m.server, m.uptimeSeconds < sinceEpochStart ? m.uptimeSeconds : sinceEpochStart);
    }

    const epochSeconds = BigInt(Math.floor(this.settings.epochDurationMs / 1000));
    const nodes: NodeReward[] = [...byServer.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([address, rows]) => {
        const blockTokens = rows.reduce((sum, row) => sum + receiptBlockTokens(row), 0n);
        const weight = uptimeWeightPpm(uptime.get(address), epochSeconds);
        return { address, receipts: rows.length, blockTokens, uptimeWeightPpm: weight, contribution: contribution(blockTokens, weight) };
      });
    return { nodes, flagged };
  }

  /** Addresses with spot-check evidence in `epoch`. */
  private async excluded(epoch: number): Promise<Set<Address>> {
    return new Set((await this.components.store.evidence(epoch)).map((row) => row.suspect));
  }

  /**
   * Takes one piece of spot-check evidence (evidence.ts says what is checked); a report that fails a check is an
   * InvalidReportError with the reason. Accepted, the suspect is excluded from the epoch of `reportedAt`, and slashed
   * when this oracle has a slasher (in the background: the answer does not wait for the transaction).
   */
  async acceptEvidence(item: unknown): Promise<EvidenceResult> {
    const parsed = parseItem(signedEvidenceSchema, item);
    if (!parsed.ok) throw new InvalidReportError(parsed.reason, 'evidence');
    const signed = parsed.value;
    const payer = await this.signer(() => spotCheckReportSigner(this.domain, signed.report, signed.signature));
    if (!payer) throw new InvalidReportError('the report signature is invalid', 'signature');
    if (!this.payers.has(payer)) throw new InvalidReportError(`signed by ${payer}, not a known payer`, 'signature');
    const timeProblem = this.checkTime(Number(signed.report.reportedAt));
    if (timeProblem) throw new InvalidReportError(`reportedAt ${timeProblem}`, 'report.reportedAt');
    const verdict = await verifyEvidence(signed);
    if (!verdict.ok) throw new InvalidReportError(verdict.reason, 'evidence');
    const { suspect, checker, report } = signed;
    const epoch = this.epochAt(Number(report.reportedAt));
    const inserted = await this.components.store.insertEvidence({
      digest: report.evidence,
      epoch,
      payer,
      suspect: report.suspect,
      suspectPeerId: suspect.peerId,
      checker: checker.ethAddress,
      checkerPeerId: checker.peerId,
      blockStart: suspect.claim.spanStart,
      blockEnd: suspect.claim.spanEnd,
      position: suspect.claim.position,
      deviation: verdict.deviation,
      body: { ...signed, report: { ...report, reportedAt: String(report.reportedAt) } },
      reportedAt: Number(report.reportedAt),
      acceptedAt: new Date(this.now()),
      slashTx: null,
      slashError: null,
    });
    const { slasher } = this.components;
    if (inserted) {
      this.log('evidence against %s (%s) for epoch %d from %s: deviation %s', report.suspect, suspect.peerId, epoch, payer, verdict.deviation.toExponential(2));
      if (slasher) this.pendingSlashes.add(this.slash(slasher, report.evidence, report.suspect, `spot-check: wrong results for blocks [${suspect.claim.spanStart}, ${suspect.claim.spanEnd}) (evidence ${report.evidence})`));
    }
    return { status: inserted ? 'accepted' : 'duplicate', epoch, suspect: report.suspect, slash: slasher ? 'pending' : 'not-configured' };
  }

  /** Resolves once every slash started so far has been sent and recorded (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.pendingSlashes.size > 0) await Promise.all([...this.pendingSlashes]);
  }

  private slash(slasher: RegistrySlasher, digest: Hex, suspect: Address, reason: string): Promise<void> {
    const run: Promise<void> = slasher
      .slash(suspect, reason)
      .then(
        async (txHash) => {
          this.log('slashed %s in %s', suspect, txHash);
          await this.components.store.markSlashed(digest, { txHash });
        },
        async (error: unknown) => {
          const message = (error as Error)?.message ?? String(error);
          this.log.error('slashing %s failed (the evidence stays for the admin): %s', suspect, message);
          await this.components.store.markSlashed(digest, { error: message.slice(0, 2000) });
        },
      )
      .catch((error: unknown) => this.log.error('recording the slash of %s failed: %s', suspect, (error as Error)?.message ?? String(error)))
      .finally(() => this.pendingSlashes.delete(run));
    return run;
  }

  private async acceptReceipt(item: unknown, isActive: (server: Address) => Promise<boolean>): Promise<'accepted' | 'duplicate' | { reason: string }> {
    const parsed = parseItem(signedReceiptSchema, item);
    if (!parsed.ok) return { reason: parsed.reason };
    const signed: SignedReceipt = parsed.value;
    const { message } = signed;
    const payer = await this.signer(() => receiptSigner(this.domain, signed));
    if (!payer) return { reason: 'invalid signature' };
    if (!this.payers.has(payer)) return { reason: `signed by ${payer}, not a known payer` };
    const timeProblem = this.checkTime(Number(message.issuedAt));
    if (timeProblem) return { reason: `issuedAt ${timeProblem}` };
    if (!(await isActive(message.server))) return { reason: `server ${message.server} is not active in the registry` };
    const epoch = this.epochAt(Number(message.issuedAt));
    const digest = hashTypedData({ domain: this.domain, types: RECEIPT_TYPES, primaryType: 'Receipt', message });
    const outcome = await this.components.store.insertReceipt({
      payer,
      ...message,
      issuedAt: Number(message.issuedAt),
      epoch,
      digest,
      signature: signed.signature,
      acceptedAt: new Date(this.now()),
    });
    const key = `${payer}/${message.sessionId}/${message.server}/${message.blockStart}-${message.blockEnd}`;
    return this.settle(outcome, epoch, 'receipt', payer, key, digest, signed.signature);
  }

  private async acceptOneMetrics(item: unknown, isActive: (server: Address) => Promise<boolean>): Promise<'duplicate' | { reason: string } | { excess: bigint }> {
    const parsed = parseItem(signedMetricsSchema, item);
    if (!parsed.ok) return { reason: parsed.reason };
    const signed: SignedMetrics = parsed.value;
    const { message } = signed;
    const signer = await this.signer(() => nodeMetricsSigner(this.domain, signed));
    if (!signer) return { reason: 'invalid signature' };
    if (signer !== message.server) return { reason: `signed by ${signer}, not by the server ${message.server}` };
    const periodStart = Number(message.periodStart);
    const periodEnd = Number(message.periodEnd);
    const timeProblem = this.checkTime(periodEnd);
    if (timeProblem) return { reason: `periodEnd ${timeProblem}` };
    const epoch = this.epochAt(periodEnd - 1);
    if (this.epochAt(periodStart) !== epoch) return { reason: `the period spans more than one epoch (epochs are ${this.settings.epochDurationMs} ms)` };
    if (!(await isActive(message.server))) return { reason: `server ${message.server} is not active in the registry` };
    const digest = hashTypedData({ domain: this.domain, types: NODE_METRICS_TYPES, primaryType: 'NodeMetrics', message });
    const row: MetricsRow = { ...message, periodStart, periodEnd, epoch, digest, signature: signed.signature, acceptedAt: new Date(this.now()) };
    const outcome = await this.components.store.insertMetrics(row);
    const settled = await this.settle(outcome, epoch, 'metrics', signer, `${signer}/${periodStart}-${periodEnd}`, digest, signed.signature);
    if (settled !== 'accepted') return settled;
    const receipted = receiptedTokensIn((await this.components.store.receipts(epoch)).filter((r) => r.server === message.server), periodStart, periodEnd);
    return { excess: message.tokensServed > receipted ? message.tokensServed - receipted : 0n };
  }

  private async settle(
    outcome: Awaited<ReturnType<OracleStore['insertReceipt']>>,
    epoch: number,
    kind: 'receipt' | 'metrics',
    signer: Address,
    key: string,
    digest: Hex,
    signature: Hex,
  ): Promise<'accepted' | 'duplicate' | { reason: string }> {
    if (outcome === 'closed') return { reason: `epoch ${epoch} is already closed` };
    if (outcome.inserted) return 'accepted';
    if (outcome.existingDigest === digest) return 'duplicate';
    await this.components.store.recordConflict({ kind, epoch, signer, key, existingDigest: outcome.existingDigest, rejectedDigest: digest, rejectedSignature: signature, at: new Date(this.now()) });
    this.log('conflicting %s from %s for %s', kind, signer, key);
    return { reason: `conflict: a different ${kind} for ${key} was accepted already` };
  }

  /** Why a signed time is unacceptable, or undefined. */
  private checkTime(ms: number): string | undefined {
    const now = this.now();
    if (ms > now + this.skewMs) return `is in the future (${ms} > now ${now})`;
    if (ms < now - this.maxAgeMs || ms < this.settings.genesisMs) return `is older than the ${this.maxAgeMs} ms window`;
    return undefined;
  }

  private async signer(recover: () => Promise<Address>): Promise<Address | undefined> {
    try {
      return (await recover()).toLowerCase() as Address;
    } catch {
      return undefined;
    }
  }

  /** isActive, asked once per server per batch. */
  private activeCache(): (server: Address) => Promise<boolean> {
    const answers = new Map<Address, Promise<boolean>>();
    return (server) => {
      let answer = answers.get(server);
      if (!answer) answers.set(server, (answer = this.components.registry.isActive(server)));
      return answer;
    };
  }
}

function checkBatch(field: string, items: readonly unknown[]): void {
  if (items.length > MAX_BATCH_ITEMS) throw new BatchTooLargeError(field, items.length, MAX_BATCH_ITEMS);
}

function receiptedTokensIn(rows: readonly ReceiptRow[], periodStart: number, periodEnd: number): bigint {
  return rows.filter((r) => r.issuedAt >= periodStart && r.issuedAt < periodEnd).reduce((sum, r) => sum + r.promptTokens + r.generatedTokens + r.replayedTokens, 0n);
}

function toFlaggedJson(flag: FlaggedMetrics): FlaggedJson {
  return { server: flag.server, periodStart: String(flag.periodStart), periodEnd: String(flag.periodEnd), claimedTokens: String(flag.claimedTokens), receiptedTokens: String(flag.receiptedTokens), excess: String(flag.excess) };
}

function fromFlaggedJson(flag: FlaggedJson): FlaggedMetrics {
  return { server: flag.server, periodStart: BigInt(flag.periodStart), periodEnd: BigInt(flag.periodEnd), claimedTokens: BigInt(flag.claimedTokens), receiptedTokens: BigInt(flag.receiptedTokens), excess: BigInt(flag.excess) };
}
