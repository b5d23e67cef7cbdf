/**
 * Reports spot-check failures (RemoteModel's 'spot-check:failed') to the oracle's POST /v1/evidence: both servers'
 * signed replies with their outputs and bindings, under the payer's EIP-712 SpotCheckReport (chain/evidence.ts).
 * Evidence without verified addresses for both servers is only logged: the oracle could not tie it to an account.
 * Kept in memory and retried a few times while the oracle is down (a restart loses it; the ban stands either way).
 */
import type { LocalAccount, TypedDataDomain } from 'viem';
import type { EvidenceParty, SpotCheckEvidence } from '../../client/spot-check.js';
import { signSpotCheckReport } from '../../chain/evidence.js';
import { receiptDomain } from '../../chain/receipts.js';
import type { Logger } from '../../util/logger.js';
import { evidenceDigest } from '../../wire/attestation.js';
import { EVIDENCE_POST_TRIES, RECEIPT_POST_TIMEOUT_MS } from '../defaults.js';
import type { ReceiptSettings } from './sign.js';

export class EvidenceReporter {
  private readonly domain: TypedDataDomain;
  private readonly account: LocalAccount;
  private readonly endpoint: string;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly components: { log: Logger; now?: () => number },
    settings: ReceiptSettings,
  ) {
    this.domain = receiptDomain(settings.chainId, settings.rewardPool);
    this.account = settings.account;
    this.endpoint = new URL('v1/evidence', settings.oracleUrl.endsWith('/') ? settings.oracleUrl : `${settings.oracleUrl}/`).toString();
  }

  /** Signs and sends the evidence in the background. */
  report(evidence: SpotCheckEvidence): void {
    const run: Promise<void> = this.send(evidence)
      .catch((error: unknown) => this.components.log.error('reporting spot-check evidence failed: %s', (error as Error)?.message ?? String(error)))
      .finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }

  /** Resolves when every report started so far has been answered or given up. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  close(): void {
    this.stopping.abort();
  }

  private async send(evidence: SpotCheckEvidence): Promise<void> {
    const { suspect, checker } = evidence;
    const log = this.components.log;
    if (!suspect.ethAddress || !checker.ethAddress) {
      log('spot-check evidence against %s not reported: %s has no verified address', suspect.peerId, suspect.ethAddress ? 'the checker' : 'it');
      return;
    }
    const report = { suspect: suspect.ethAddress, suspectPeerId: suspect.peerId, evidence: `0x${evidenceDigest(suspect, checker)}` as const, reportedAt: BigInt((this.components.now ?? Date.now)()) };
    const signature = await signSpotCheckReport(this.account, this.domain, report);
    const body = JSON.stringify({ report: { ...report, reportedAt: String(report.reportedAt) }, signature, suspect: partyJson(suspect), checker: partyJson(checker) });
    for (let attempt = 1; ; attempt++) {
      try {
        const response = await fetch(this.endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(RECEIPT_POST_TIMEOUT_MS)]) });
        const answer = await response.text();
        // a 4xx is the oracle's verdict on the evidence: sending it again would not change it
        if (response.ok || (response.status >= 400 && response.status < 500)) {
          log('spot-check evidence against %s: oracle answered %d %s', suspect.ethAddress, response.status, answer.slice(0, 300));
          return;
        }
        throw new Error(`HTTP ${response.status}`);
      } catch (error) {
        if (this.stopping.signal.aborted || attempt >= EVIDENCE_POST_TRIES) throw error;
        await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** (attempt - 1)));
      }
    }
  }
}

function partyJson(party: EvidenceParty) {
  const { output, ethBinding, ...rest } = party;
  return { ...rest, ethBinding, output: Buffer.from(output.buffer, output.byteOffset, output.byteLength).toString('base64') };
}
