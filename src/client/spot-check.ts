/**
 * Spot-checks of servers' span work. When a session closes, each of its hops is checked with probability `rate`:
 * the hop's whole input history is replayed, in its original chunking, into a fresh session on ANOTHER server
 * serving the same blocks, and every step's output is compared with what the hop returned (rowDeviation, within
 * DEFAULT tolerance for the codec: wire/attestation.ts). The check runs after the session, in the background, one
 * at a time: it never slows or changes the user's output.
 *
 * On a mismatch a referee (a third server with the same blocks) replays up to the first differing step; the server
 * the other two disagree with is the cheater: it is banned for a day and `spot-check:failed` carries the evidence,
 * both servers' signed replies to the same input history (wire/attestation.ts), for the oracle. With no referee the
 * client cannot tell which of the two is wrong: `spot-check:disputed`, and nobody is banned or reported.
 */
import { TypedEventEmitter } from 'main-event';
import type { Address } from 'viem';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import { DEVIATION_TOLERANCE, rowDeviation } from '../wire/attestation.js';
import type { Codec } from '../wire/messages.js';
import { BanList } from './bans.js';
import { DEFAULT_CHEAT_BAN_MS, DEFAULT_SPOT_CHECK_CONCURRENCY, DEFAULT_SPOT_CHECK_QUEUE } from './defaults.js';
import { shortPeer } from './errors.js';
import type { RouteSource } from './inference-session.js';
import { recordOf, type PlannerRecord } from './route-planner.js';
import type { LaneDialer } from '../swarm/lanes.js';
import { openRemoteSpan, type AttestedOutput, type DialerNode, type RemoteSpan, type StepInput } from './remote-span.js';

export interface SpotCheckSettings {
  /** Fraction of (session, hop) pairs re-run on another server, 0..1 (0 disables). */
  readonly rate: number;
  /** Largest accepted rowDeviation (default DEVIATION_TOLERANCE of the session's codec). */
  readonly tolerance?: number;
  readonly concurrency?: number;
  readonly stepTimeoutMs?: number;
  readonly openTimeoutMs?: number;
  readonly replayWindow?: number;
  /** How long a caught server is banned (ms). Default DEFAULT_CHEAT_BAN_MS. */
  readonly banMs?: number;
  /** Uniform in [0, 1): which hops are checked (tests pass a seeded one). */
  readonly random?: () => number;
}

export interface SpotCheckComponents {
  readonly node: DialerNode;
  /** Direct lanes to servers (the node's), tried before libp2p streams. */
  readonly lanes?: LaneDialer;
  readonly source: RouteSource;
  readonly bans: BanList;
  readonly logger?: ComponentLogger;
}

/** A hop as its session closes: who served which blocks, what it was sent and what it signed. */
export interface CheckedHop {
  readonly span: RemoteSpan;
  readonly record: PlannerRecord;
  readonly inputs: readonly StepInput[];
  readonly hiddenSize: number;
}

/** One side of the evidence: a server's signed reply to the step, and the address its record binds it to. */
export interface EvidenceParty extends AttestedOutput {
  readonly ethAddress?: Address;
  readonly ethBinding?: { readonly issuedAt: number; readonly signature: string };
}

export interface SpotCheckEvidence {
  readonly suspect: EvidenceParty;
  /** The server whose reply to the same input history the referee confirmed. */
  readonly checker: EvidenceParty;
  /** The referee's peer id (its reply agreed with the checker's). */
  readonly referee: string;
  readonly hiddenSize: number;
  readonly deviation: number;
  readonly tolerance: number;
}

export interface SpotCheckResult {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  readonly checker: string;
  readonly steps: number;
  /** The largest rowDeviation seen over the compared steps. */
  readonly maxDeviation: number;
  readonly ms: number;
}

export interface SpotCheckEvents {
  'spot-check:passed': CustomEvent<SpotCheckResult>;
  'spot-check:failed': CustomEvent<SpotCheckEvidence & { readonly banMs: number }>;
  /** Two servers disagreed and no third could tell which is right. */
  'spot-check:disputed': CustomEvent<{ readonly peerIds: readonly [string, string]; readonly deviation: number }>;
  /** A selected check could not run (no other server with these blocks, or the checker failed). */
  'spot-check:skipped': CustomEvent<{ readonly peerId: string; readonly reason: string }>;
}

export interface SpotCheckStats {
  selected: number;
  passed: number;
  failed: number;
  disputed: number;
  skipped: number;
  dropped: number;
  /** Steps replayed on checkers and referees. */
  replayedSteps: number;
  /** The largest deviation of any check that passed (the honest noise seen). */
  maxPassedDeviation: number;
}

interface Replayed {
  readonly span: RemoteSpan;
  readonly outputs: readonly AttestedOutput[];
}

export class SpotChecker extends TypedEventEmitter<SpotCheckEvents> {
  readonly stats: SpotCheckStats = { selected: 0, passed: 0, failed: 0, disputed: 0, skipped: 0, dropped: 0, replayedSteps: 0, maxPassedDeviation: 0 };
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly waiting: (() => Promise<void>)[] = [];
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly settings: SpotCheckSettings,
    private readonly components: SpotCheckComponents,
  ) {
    super();
    if (!(settings.rate >= 0 && settings.rate <= 1)) throw new RangeError(`spot-check rate must be in 0..1, got ${settings.rate}`);
    this.log = (components.logger ?? silentLogger).forComponent('corolla:client:spot-check');
    this.random = settings.random ?? Math.random;
  }

  /** Called for each hop of a closing session: queues a check of it with probability `rate`. Never throws. */
  consider(hop: CheckedHop, codec: Codec): void {
    if (hop.inputs.length === 0 || this.random() >= this.settings.rate) return;
    this.stats.selected++;
    if (this.waiting.length >= DEFAULT_SPOT_CHECK_QUEUE) {
      this.stats.dropped++;
      return;
    }
    this.waiting.push(() => this.check(hop, codec));
    this.pump();
  }

  /** Resolves when every queued and running check has ended. */
  async drain(): Promise<void> {
    while (this.running.size > 0 || this.waiting.length > 0) await Promise.all([...this.running]);
  }

  private pump(): void {
    const limit = this.settings.concurrency ?? DEFAULT_SPOT_CHECK_CONCURRENCY;
    while (this.running.size < limit && this.waiting.length > 0) {
      const task = this.waiting.shift()!;
      const run: Promise<void> = task()
        .catch((error: unknown) => this.log.error('spot-check failed unexpectedly: %s', (error as Error)?.message ?? String(error)))
        .finally(() => {
          this.running.delete(run);
          this.pump();
        });
      this.running.add(run);
    }
  }

  private async check(hop: CheckedHop, codec: Codec): Promise<void> {
    const started = performance.now();
    const { span, hiddenSize } = hop;
    const suspect = span.peerId;
    const tolerance = this.settings.tolerance ?? DEVIATION_TOLERANCE[codec];
    const skip = (reason: string) => {
      this.stats.skipped++;
      this.log('spot-check of %s skipped: %s', shortPeer(suspect), reason);
      this.safeDispatchEvent('spot-check:skipped', { detail: { peerId: suspect, reason } });
    };
    // what the hop signed for each step of its current history (a rewound step was signed again later: the last counts)
    await span.verified().catch(() => {});
    const signed = hop.inputs.map((input) => lastSigned(span.attested, input));
    if (signed.some((entry) => entry === undefined)) return skip('the hop did not sign every step of its history');
    const claims = signed as AttestedOutput[];

    const records = await this.components.source.records().catch(() => []);
    const candidates = records
      .map(recordOf)
      .filter((r) => r.peerId !== suspect && r.span.start === span.start && r.span.end === span.end && r.state === 'online' && !this.components.bans.isBanned(r.peerId));
    const byPeer = new Map(records.map((value) => [recordOf(value).peerId, recordOf(value)]));
    // only servers on the suspect's engine fingerprint, in random order: they compute bit for bit alike (measured:
    // deviation 0 across threads, batching and f16), while another engine (f32 vs int8 activations) differs by up to
    // ~0.09 over 30 blocks, more than a 1 % cheat; a candidate that fails (gone since the records were read) is
    // passed over for the next
    const engine = (byPeer.get(suspect) ?? hop.record).engine;
    const queue = shuffle(candidates.filter((r) => r.engine === engine), this.random);
    if (queue.length === 0) return skip(`no other server on engine ${engine ?? '(unknown)'} serves blocks [${span.start}, ${span.end})`);
    const failures: string[] = [];
    const next = async (inputs: readonly StepInput[]): Promise<{ record: PlannerRecord; replayed: Replayed } | undefined> => {
      for (let record = queue.shift(); record; record = queue.shift()) {
        try {
          return { record, replayed: await this.replay(record, hop, inputs, codec) };
        } catch (error) {
          failures.push(`${shortPeer(record.peerId)}: ${(error as Error)?.message ?? String(error)}`);
        }
      }
      return undefined;
    };
    const check = await next(hop.inputs);
    if (!check) return skip(`no checker could replay the history (${failures.join('; ')})`);
    const { record: checkerRecord, replayed: checked } = check;
    let maxDeviation = 0;
    let first = -1;
    for (const [i, entry] of checked.outputs.entries()) {
      const deviation = rowDeviation(claims[i]!.output, entry.output, hiddenSize);
      if (!(deviation <= tolerance)) {
        first = i;
        maxDeviation = deviation;
        break;
      }
      maxDeviation = Math.max(maxDeviation, deviation);
    }
    if (first < 0) {
      this.stats.passed++;
      this.stats.maxPassedDeviation = Math.max(this.stats.maxPassedDeviation, maxDeviation);
      const result = { peerId: suspect, start: span.start, end: span.end, checker: checkerRecord.peerId, steps: claims.length, maxDeviation, ms: performance.now() - started };
      this.log('spot-check of %s passed: %d steps on %s, max deviation %s', shortPeer(suspect), result.steps, shortPeer(result.checker), maxDeviation.toExponential(2));
      this.safeDispatchEvent('spot-check:passed', { detail: result });
      return;
    }

    // Two servers disagree: a third decides which one computed something else.
    const disputed = () => {
      this.stats.disputed++;
      this.log('spot-check: %s and %s disagree at step %d (deviation %s) and no referee decides', shortPeer(suspect), shortPeer(checkerRecord.peerId), first, maxDeviation.toExponential(2));
      this.safeDispatchEvent('spot-check:disputed', { detail: { peerIds: [suspect, checkerRecord.peerId], deviation: maxDeviation } });
    };
    const referee = await next(hop.inputs.slice(0, first + 1));
    if (!referee) return disputed();
    const { record: refereeRecord, replayed: refereed } = referee;
    const judge = refereed.outputs[first]!.output;
    const agreesWithChecker = rowDeviation(judge, checked.outputs[first]!.output, hiddenSize) <= tolerance;
    const agreesWithSuspect = rowDeviation(judge, claims[first]!.output, hiddenSize) <= tolerance;
    if (agreesWithChecker === agreesWithSuspect) return disputed();
    const [cheat, honest, cheatRecord, honestRecord] = agreesWithChecker
      ? [claims[first]!, checked.outputs[first]!, byPeer.get(suspect) ?? hop.record, checkerRecord]
      : [checked.outputs[first]!, claims[first]!, checkerRecord, byPeer.get(suspect) ?? hop.record];
    const banMs = this.settings.banMs ?? DEFAULT_CHEAT_BAN_MS;
    this.components.bans.banFor(cheat.peerId, banMs, `spot-check: wrong hidden states for blocks [${span.start}, ${span.end})`);
    this.stats.failed++;
    const evidence: SpotCheckEvidence = {
      suspect: party(cheat, cheatRecord),
      checker: party(honest, honestRecord),
      referee: refereeRecord.peerId,
      hiddenSize,
      // measured against the confirmed reply, as the oracle measures it
      deviation: rowDeviation(cheat.output, honest.output, hiddenSize),
      tolerance,
    };
    this.log('spot-check caught %s: blocks [%d, %d) step at position %d deviates %s (tolerance %s); banned for %d ms', shortPeer(cheat.peerId), span.start, span.end, cheat.claim.position, evidence.deviation.toExponential(2), tolerance, banMs);
    this.safeDispatchEvent('spot-check:failed', { detail: { ...evidence, banMs } });
  }

  /** Replays `inputs` into a fresh session on `record` and returns its signed outputs. */
  private async replay(record: PlannerRecord, hop: CheckedHop, inputs: readonly StepInput[], codec: Codec): Promise<Replayed> {
    const last = inputs[inputs.length - 1]!;
    const span = await openRemoteSpan(
      this.components.node,
      { peerId: record.peerId, addrs: record.addrs },
      { maxLength: last.position + last.tokens, start: hop.span.start, end: hop.span.end, hiddenSize: hop.hiddenSize },
      { codec, stepTimeoutMs: this.settings.stepTimeoutMs, openTimeoutMs: this.settings.openTimeoutMs, lanes: this.components.lanes },
    );
    try {
      await span.replay(inputs, { window: this.settings.replayWindow });
      await span.verified();
      this.stats.replayedSteps += inputs.length;
      return { span, outputs: span.attested };
    } finally {
      await span.close();
    }
  }
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function lastSigned(attested: readonly AttestedOutput[], input: StepInput): AttestedOutput | undefined {
  for (let i = attested.length - 1; i >= 0; i--) if (attested[i]!.claim.position === input.position && attested[i]!.claim.tokens === input.tokens) return attested[i];
  return undefined;
}

function party(signed: AttestedOutput, record: PlannerRecord): EvidenceParty {
  const { ethAddress, ethBinding } = record as PlannerRecord & { ethAddress?: Address; ethBinding?: { issuedAt: number; signature: string } };
  return { ...signed, ...(ethAddress && ethBinding ? { ethAddress, ethBinding: { issuedAt: ethBinding.issuedAt, signature: ethBinding.signature } } : {}) };
}
