/** The registry's public shapes: options, what servers announce, what readers get back, and the Registry itself. */
import type { ComponentLogger } from '../../util/logger.js';
import type { ServerRecord, ServerRecordInput, VerifiedLoadReport, VerifiedRecord, VerifyResult } from '../records/index.js';
import type { ModelCoverage } from './coverage.js';

export interface RegistryOptions {
  /** How often the record is re-signed and re-put (default 30 000 ms). */
  refreshMs?: number;
  /** Lifetime of each signed record (default 90 000 ms; should be a few refreshes). */
  ttlMs?: number;
  /** Minimum gap between DHT republishes caused by load changes (default 5 000 ms). */
  minRepublishMs?: number;
  /** How often provider records are re-published by us (default 10 min; kad-dht also re-provides). */
  reprovideMs?: number;
  /** Budget for one publish round (puts + provides), default 10 000 ms. */
  publishTimeoutMs?: number;
  /** Budget for the provider discovery phase of lookup/listModels, default 5 000 ms. */
  lookupTimeoutMs?: number;
  /** Budget for fetching one peer's record (DHT get or direct request), default 3 000 ms. */
  requestTimeoutMs?: number;
  /** Clock skew tolerated when verifying records (default 30 000 ms). */
  clockSkewMs?: number;
  /** Parallel record fetches during lookups (default 16). */
  concurrency?: number;
  /**
   * How lookups fetch a provider's record: 'prefer' (default; ask the peer, then the DHT if that fails), 'fallback'
   * (DHT first, ask the peer only when the DHT has no valid record), 'always' (both, keep the newest), 'never'
   * (DHT only).
   */
  direct?: 'prefer' | 'fallback' | 'always' | 'never';
  /** After a failed direct request, skip asking that peer directly for this long (default 60 000 ms). */
  unreachableMs?: number;
  /** Diagnostics (component `corolla:registry`); default silent. */
  logger?: ComponentLogger;
}

/** What a server announces; the registry fills in peerId, addrs (unless given), effective throughput and times. */
export type AnnounceInput = Omit<ServerRecordInput, 'addrs'> & { addrs?: string[] };

export interface LoadUpdate {
  activeSessions?: number;
  queuedSteps?: number;
  cacheTokensLeft?: number;
}

export interface PublishResult {
  record: VerifiedRecord;
  /** Peers that confirmed storing each key (0 on a lone node: the record then lives only locally until peers join). */
  replicas: number;
  /** Whether the provider records reached at least one peer during this or an earlier round. */
  provided: boolean;
}

export interface RejectedRecord {
  /** The peer whose record this was meant to be (the provider we asked about). */
  peerId: string;
  source: 'dht' | 'direct';
  reason: string;
}

export interface LookupResult {
  /** Valid records, newest per peer, sorted by span start then peer id. All states (joining/online/offline). */
  records: VerifiedRecord[];
  /** What was seen and rejected, with reasons (for logs and tests). */
  rejected: RejectedRecord[];
  /** How many distinct providers were found. */
  providers: number;
}

export interface LookupOptions {
  /** When known, records must agree on the model's block count. */
  numBlocks?: number;
  /** Override of `lookupTimeoutMs`. */
  timeoutMs?: number;
}

/** Reading the swarm: what every node can do, without serving anything. */
export interface RegistryReader {
  /** Valid, unexpired, signature-checked records of a model's servers, newest per peer. */
  lookup(modelId: string, options?: LookupOptions): Promise<VerifiedRecord[]>;
  lookupDetailed(modelId: string, options?: LookupOptions): Promise<LookupResult>;
  /** Models announced in the swarm, with their block coverage. */
  listModels(options?: { timeoutMs?: number }): Promise<ModelCoverage[]>;
  /** Asks a peer directly (announce protocol) for its current record. */
  fetchRecord(peerId: string, options?: { modelId?: string; addrs?: string[] }): Promise<VerifyResult<ServerRecord>>;
  /** Asks a server for its live load; the reply is signed by that peer and bound to a fresh nonce. */
  heartbeat(peerId: string, options?: { modelId?: string; addrs?: string[] }): Promise<VerifiedLoadReport>;
}

/** Announcing: what a server does. The first `announce` registers the announce and heartbeat handlers on the node. */
export interface RegistryPublisher {
  /** Starts announcing (first publish awaited), then refreshes periodically. Replaces any previous announcement. */
  announce(input: AnnounceInput): Promise<PublishResult>;
  /** Changes announced fields (state, span, throughput…) and republishes now. */
  update(patch: Partial<AnnounceInput>): Promise<PublishResult>;
  /** Records new load figures: heartbeat answers use them at once; the DHT record follows within minRepublishMs. */
  updateLoad(load: LoadUpdate): void;
  /** Publishes state 'offline', stops refreshing and re-providing. */
  withdraw(): Promise<PublishResult | undefined>;
  /** Our latest signed record, if announcing. */
  current(): VerifiedRecord | undefined;
}

export interface Registry extends RegistryReader, RegistryPublisher {
  readonly peerId: string;
  /** Stops timers and protocol handlers (does not publish 'offline'; call withdraw first for that). */
  close(): Promise<void>;
}
