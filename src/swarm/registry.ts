/**
 * The announce/lookup layer on top of the DHT.
 *
 * Design (see keys.ts for the exact keys). kad-dht keeps ONE value per key and storing peers overwrite it on every
 * put, so a shared per-model or per-block value (Petals' map of peer → info) would lose concurrent writers' entries.
 * Instead every key has exactly one writer:
 *   - each server puts its own signed record under /corolla/<model>/<peerId> (and /corolla-peer/<peerId>);
 *   - membership is kad-dht provider records, which DO aggregate many peers per CID: each server provides the
 *     model's CID (its shard of it) and the models-index CID (its shard).
 * A reader finds providers, then fetches each provider's record: by default it first asks the peer itself over
 * /corolla/announce/1.0.0 (one round trip, freshest data), and falls back to the DHT value under the peer's key when
 * the peer does not answer or answers with something invalid (the DHT keeps the last signed state of peers that are
 * gone or unreachable, e.g. 'offline' after a withdraw). A DHT get costs a walk over the closest peers (several
 * round trips), so asking first is both cheaper and fresher; peers that failed to answer are asked the DHT directly
 * for a minute. Every record, from either path, is verified by the reader itself.
 *
 * Records are re-signed and re-put every `refreshMs` with a TTL of `ttlMs`, immediately on state changes, and on
 * load changes at most every `minRepublishMs`. Live load is also available any time over /corolla/heartbeat/1.0.0.
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { CID } from 'multiformats/cid';
import type { QueryEvent } from '@libp2p/kad-dht';
import type { SwarmNode } from './node.js';
import { InvalidRecordError, PeerRequestError, SwarmConfigError } from './errors.js';
import {
  allIndexProviderCids,
  allModelProviderCids,
  indexProviderCid,
  modelProviderCid,
  peerRecordKey,
  providerShard,
  serverRecordKey,
} from './keys.js';
import { ANNOUNCE_PROTOCOL, HEARTBEAT_PROTOCOL, handleJson, requestJson } from './protocol.js';
import {
  createSignedServerRecord,
  encodeEnvelope,
  signLoadReport,
  verifyLoadReport,
  verifyServerRecord,
  type LoadReport,
  type ServerLoad,
  type ServerRecord,
  type ServerRecordInput,
  type ServerState,
  type VerifiedLoadReport,
  type VerifiedRecord,
  type VerifyResult,
} from './records.js';

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
  /** Diagnostic log lines (default: none). */
  log?: (line: string) => void;
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

export interface BlockCoverage {
  /** Online servers holding this block. */
  servers: number;
  /** Sum of their effective throughput (decode steps/s through their spans). */
  throughput: number;
}

export interface ModelCoverage {
  modelId: string;
  /** The block count most servers agree on. */
  numBlocks: number;
  /** Online servers (whose numBlocks agrees). */
  servers: number;
  /** Servers announcing 'joining'. */
  joining: number;
  /** Per block `[0, numBlocks)`: online servers and summed throughput. */
  blocks: BlockCoverage[];
  /** Blocks with at least one online server. */
  coveredBlocks: number;
  /** Every block is served. */
  complete: boolean;
  /** The weakest block's summed throughput (0 when there is a gap): the swarm's bottleneck for this model. */
  minThroughput: number;
  /** Every valid record found for the model, any state. */
  records: VerifiedRecord[];
}

export interface Registry {
  readonly peerId: string;
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
  /** Valid, unexpired, signature-checked records of a model's servers, newest per peer. */
  lookup(modelId: string, options?: LookupOptions): Promise<VerifiedRecord[]>;
  lookupDetailed(modelId: string, options?: LookupOptions): Promise<LookupResult>;
  /** Models announced in the swarm, with their block coverage. */
  listModels(options?: { timeoutMs?: number }): Promise<ModelCoverage[]>;
  /** Asks a peer directly (announce protocol) for its current record. */
  fetchRecord(peerId: string, options?: { modelId?: string; addrs?: string[] }): Promise<VerifyResult<ServerRecord>>;
  /** Asks a server for its live load; the reply is signed by that peer and bound to a fresh nonce. */
  heartbeat(peerId: string, options?: { modelId?: string; addrs?: string[] }): Promise<VerifiedLoadReport>;
  /** Stops timers and protocol handlers (does not publish 'offline'; call withdraw first for that). */
  close(): Promise<void>;
}

interface ProviderInfo {
  peerId: string;
  addrs: Multiaddr[];
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  });
  await Promise.all(workers);
  return results;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A signal that aborts on `parent` or after `ms`; kad-dht hangs many listeners on it, so lift the listener cap. */
function deadline(parent: AbortSignal, ms: number): AbortSignal {
  const signal = AbortSignal.any([parent, AbortSignal.timeout(ms)]);
  setMaxListeners(Infinity, signal);
  return signal;
}

const newer = (a: VerifiedRecord | undefined, b: VerifiedRecord): boolean => !a || b.record.issuedAt > a.record.issuedAt;

export async function createRegistry(node: SwarmNode, options: RegistryOptions = {}): Promise<Registry> {
  const refreshMs = options.refreshMs ?? 30_000;
  const ttlMs = options.ttlMs ?? 90_000;
  const minRepublishMs = options.minRepublishMs ?? 5_000;
  const reprovideMs = options.reprovideMs ?? 10 * 60_000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 10_000;
  const lookupTimeoutMs = options.lookupTimeoutMs ?? 5_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 3_000;
  const clockSkewMs = options.clockSkewMs;
  const concurrency = options.concurrency ?? 16;
  const direct = options.direct ?? 'prefer';
  const unreachableMs = options.unreachableMs ?? 60_000;
  /** peerId → time until which direct requests are skipped */
  const unreachable = new Map<string, number>();
  const log = options.log ?? (() => {});
  if (!(ttlMs > refreshMs)) throw new SwarmConfigError(`ttlMs (${ttlMs}) must exceed refreshMs (${refreshMs})`);

  const { libp2p, peerId } = node;
  const dht = libp2p.services.dht;
  const closer = new AbortController();
  // every request derives its signal from this one
  setMaxListeners(Infinity, closer.signal);

  let info: AnnounceInput | undefined;
  let current: VerifiedRecord | undefined;
  let withdrawn = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Infinity;
  let lastPublishAt = 0;
  let providedAt = 0;
  let providedModel: string | undefined;
  let retryDelay = 500;
  /** set when announced fields changed after the last signature */
  let dirty = false;
  let chain: Promise<unknown> = Promise.resolve();

  // ---- publishing ----------------------------------------------------------------------------------------------

  async function sign(from: AnnounceInput | undefined = info): Promise<VerifiedRecord> {
    if (!from) throw new SwarmConfigError('nothing announced');
    const envelope = await createSignedServerRecord(node.privateKey, { ...from, addrs: from.addrs ?? node.multiaddrs.slice(0, 32) }, { ttlMs });
    return { record: envelope.record, envelope };
  }

  /** Adopts new announced fields only if they make a valid record (so a bad update cannot stop the refreshes). */
  async function adopt(next: AnnounceInput): Promise<void> {
    validateInput(next);
    await sign(next);
    info = next;
  }

  async function drainCount(events: AsyncIterable<QueryEvent>, messageName: string): Promise<number> {
    const confirmed = new Set<string>();
    for await (const event of events) {
      if (event.name === 'PEER_RESPONSE' && event.messageName === messageName) confirmed.add(event.from.toString());
    }
    return confirmed.size;
  }

  async function putBoth(record: VerifiedRecord, signal: AbortSignal): Promise<number> {
    const bytes = encodeEnvelope(record.envelope);
    const results = await Promise.allSettled([
      drainCount(dht.put(serverRecordKey(record.record.modelId, peerId), bytes, { signal }), 'PUT_VALUE'),
      drainCount(dht.put(peerRecordKey(peerId), bytes, { signal }), 'PUT_VALUE'),
    ]);
    results.forEach((result) => {
      if (result.status === 'rejected') log(`put failed: ${message(result.reason)}`);
    });
    return Math.min(...results.map((result) => (result.status === 'fulfilled' ? result.value : 0)));
  }

  async function provide(modelId: string, signal: AbortSignal): Promise<boolean> {
    const shard = providerShard(peerId);
    const results = await Promise.allSettled([
      drainCount(dht.provide(modelProviderCid(modelId, shard), { signal }), 'ADD_PROVIDER'),
      drainCount(dht.provide(indexProviderCid(shard), { signal }), 'ADD_PROVIDER'),
    ]);
    results.forEach((result) => {
      if (result.status === 'rejected') log(`provide failed: ${message(result.reason)}`);
    });
    return results.every((result) => result.status === 'fulfilled' && result.value > 0);
  }

  async function cancelProvide(modelId: string): Promise<void> {
    const shard = providerShard(peerId);
    for (const cid of [modelProviderCid(modelId, shard), indexProviderCid(shard)]) {
      await dht.cancelReprovide(cid).catch((error: unknown) => log(`cancelReprovide failed: ${message(error)}`));
    }
  }

  async function publishOnce(): Promise<PublishResult> {
    dirty = false;
    const record = await sign();
    current = record;
    lastPublishAt = Date.now();
    let replicas = 0;
    if (node.routingTableSize > 0) {
      const signal = deadline(closer.signal, publishTimeoutMs);
      replicas = await putBoth(record, signal);
      const modelId = record.record.modelId;
      if (record.record.state !== 'offline' && (providedModel !== modelId || Date.now() - providedAt > reprovideMs)) {
        if (providedModel !== undefined && providedModel !== modelId) await cancelProvide(providedModel);
        if (await provide(modelId, signal)) {
          providedAt = Date.now();
          providedModel = modelId;
        }
      }
    }
    const provided = providedModel === record.record.modelId;
    log(`published ${record.record.state} record for ${record.record.modelId} [${record.record.span.start},${record.record.span.end}) to ${replicas} peers${provided ? '' : ' (providers not yet published)'}`);
    return { record, replicas, provided };
  }

  /** Serialises publishes; each one reschedules the next refresh (or a quick retry while nothing was stored remotely). */
  function publish(): Promise<PublishResult> {
    const run = chain.then(async () => {
      let result: PublishResult;
      try {
        result = await publishOnce();
      } catch (error) {
        schedule(Math.min(retryDelay, refreshMs), true);
        retryDelay = Math.min(retryDelay * 2, refreshMs);
        throw error;
      }
      if (result.replicas === 0 || !result.provided) {
        schedule(Math.min(retryDelay, refreshMs), true);
        retryDelay = Math.min(retryDelay * 2, refreshMs);
      } else {
        retryDelay = 500;
        // a load change that arrived while we were publishing goes out after minRepublishMs, not at the next refresh
        schedule(dirty ? Math.max(0, lastPublishAt + minRepublishMs - Date.now()) : refreshMs, true);
      }
      return result;
    });
    chain = run.catch(() => {});
    return run;
  }

  function schedule(delayMs: number, replace = false): void {
    if (closed || withdrawn || !info) return;
    const at = Date.now() + Math.max(0, delayMs);
    if (!replace && timer && timerAt <= at) return;
    if (timer) clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timer = undefined;
      timerAt = Infinity;
      publish().catch((error: unknown) => log(`publish failed: ${message(error)}`));
    }, Math.max(0, delayMs));
    timer.unref?.();
  }

  function validateInput(input: AnnounceInput): void {
    for (const value of [input.cacheTokensLeft, input.load?.activeSessions, input.load?.queuedSteps]) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) throw new InvalidRecordError(`load figures must be non-negative integers, got ${value}`);
    }
  }

  // ---- serving the control protocols -----------------------------------------------------------------------------

  const isObj = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

  await handleJson(libp2p, ANNOUNCE_PROTOCOL, (request) => {
    if (!isObj(request)) return { ok: false, error: 'malformed request' };
    if (!current) return { ok: false, error: 'not-serving' };
    if (request.modelId !== undefined && request.modelId !== current.record.modelId) return { ok: false, error: 'not-serving' };
    return { ok: true, envelope: current.envelope };
  });

  try {
    await handleJson(libp2p, HEARTBEAT_PROTOCOL, async (request) => {
      if (!isObj(request) || typeof request.nonce !== 'string') return { ok: false, error: 'malformed request' };
      if (!info) return { ok: false, error: 'not-serving' };
      if (request.modelId !== undefined && request.modelId !== info.modelId) return { ok: false, error: 'not-serving' };
      const now = Date.now();
      const report: LoadReport = {
        v: 1,
        peerId,
        modelId: info.modelId,
        state: info.state ?? 'online',
        load: { activeSessions: info.load?.activeSessions ?? 0, queuedSteps: info.load?.queuedSteps ?? 0 },
        cacheTokensLeft: info.cacheTokensLeft,
        nonce: request.nonce,
        issuedAt: now,
        expiresAt: now + Math.min(ttlMs, 60_000),
      };
      try {
        return { ok: true, envelope: await signLoadReport(node.privateKey, report) };
      } catch (error) {
        return { ok: false, error: message(error) };
      }
    });
  } catch (error) {
    await libp2p.unhandle(ANNOUNCE_PROTOCOL).catch(() => {});
    throw error;
  }

  // ---- reading -----------------------------------------------------------------------------------------------------

  async function findProviders(cids: CID[], timeoutMs: number): Promise<Map<string, ProviderInfo>> {
    const found = new Map<string, ProviderInfo>();
    // with an empty routing table kad-dht queries only wait for peers to appear: nobody else can be found
    if (node.routingTableSize === 0) return found;
    const signal = deadline(closer.signal, timeoutMs);
    await Promise.all(
      cids.map(async (cid) => {
        try {
          for await (const event of dht.findProviders(cid, { signal })) {
            if (event.name !== 'PROVIDER') continue;
            for (const provider of event.providers) {
              const id = provider.id.toString();
              const entry = found.get(id) ?? { peerId: id, addrs: [] };
              for (const addr of provider.multiaddrs) if (!entry.addrs.some((known) => known.equals(addr))) entry.addrs.push(addr);
              found.set(id, entry);
            }
          }
        } catch (error) {
          if (!signal.aborted) log(`findProviders ${cid.toString()} failed: ${message(error)}`);
        }
      }),
    );
    return found;
  }

  interface FetchExpectations {
    key: Uint8Array;
    modelId?: string;
    numBlocks?: number;
  }

  async function fetchFromDht(provider: ProviderInfo, expect: FetchExpectations, rejected: RejectedRecord[]): Promise<VerifiedRecord | undefined> {
    if (node.routingTableSize === 0) return undefined;
    const signal = deadline(closer.signal, requestTimeoutMs);
    const values: Uint8Array[] = [];
    try {
      for await (const event of dht.get(expect.key, { signal })) {
        if (event.name === 'VALUE') values.push(event.value);
        else if (event.name === 'PEER_RESPONSE' && event.record) values.push(event.record.value);
        else if (event.name === 'QUERY_ERROR' && /invalid record/i.test(event.error.message)) {
          rejected.push({ peerId: provider.peerId, source: 'dht', reason: `rejected by DHT validator (value held by ${event.from.toString()})` });
        }
      }
    } catch (error) {
      // NotFound, timeouts, and kad-dht's record-correction errors end the walk; keep what was collected
      if (!signal.aborted && (error as Error)?.name !== 'NotFoundError') log(`DHT get for ${provider.peerId} ended: ${message(error)}`);
    }
    let best: VerifiedRecord | undefined;
    const seen = new Set<string>();
    for (const value of values) {
      const fingerprint = Buffer.from(value).toString('base64');
      if (seen.has(fingerprint)) continue;
      seen.add(fingerprint);
      const result = await verifyServerRecord(value, { peerId: provider.peerId, modelId: expect.modelId, numBlocks: expect.numBlocks, clockSkewMs });
      if (result.ok) {
        if (newer(best, result)) best = { record: result.record, envelope: result.envelope };
      } else {
        rejected.push({ peerId: provider.peerId, source: 'dht', reason: result.reason });
      }
    }
    return best;
  }

  async function fetchDirect(provider: ProviderInfo, expect: FetchExpectations, rejected: RejectedRecord[]): Promise<VerifiedRecord | undefined> {
    if ((unreachable.get(provider.peerId) ?? 0) > Date.now()) return undefined;
    try {
      const result = await requestRecord(provider.peerId, provider.addrs, expect.modelId, expect.numBlocks);
      unreachable.delete(provider.peerId);
      if (result.ok) return { record: result.record, envelope: result.envelope };
      rejected.push({ peerId: provider.peerId, source: 'direct', reason: result.reason });
    } catch (error) {
      if (!closer.signal.aborted) unreachable.set(provider.peerId, Date.now() + unreachableMs);
      log(`direct record request to ${provider.peerId} failed: ${message(error)}`);
    }
    return undefined;
  }

  async function fetchRecordOf(provider: ProviderInfo, expect: FetchExpectations, rejected: RejectedRecord[]): Promise<VerifiedRecord | undefined> {
    if (provider.peerId === peerId) {
      const own = current && (expect.modelId === undefined || current.record.modelId === expect.modelId) ? current : undefined;
      return own && (await verifyServerRecord(own.envelope, { clockSkewMs })).ok ? own : undefined;
    }
    switch (direct) {
      case 'prefer':
        return (await fetchDirect(provider, expect, rejected)) ?? (await fetchFromDht(provider, expect, rejected));
      case 'fallback':
        return (await fetchFromDht(provider, expect, rejected)) ?? (await fetchDirect(provider, expect, rejected));
      case 'never':
        return fetchFromDht(provider, expect, rejected);
      case 'always': {
        const [fromDht, fromPeer] = await Promise.all([fetchFromDht(provider, expect, rejected), fetchDirect(provider, expect, rejected)]);
        return fromPeer && newer(fromDht, fromPeer) ? fromPeer : fromDht;
      }
    }
  }

  async function requestRecord(target: string, addrs: Multiaddr[], modelId?: string, numBlocks?: number): Promise<VerifyResult<ServerRecord>> {
    const reply = await requestJson(libp2p, target, ANNOUNCE_PROTOCOL, { v: 1, ...(modelId !== undefined ? { modelId } : {}) }, {
      signal: deadline(closer.signal, requestTimeoutMs),
      addrs,
    });
    if (!isObj(reply)) return { ok: false, reason: 'malformed reply' };
    if (reply.ok !== true) return { ok: false, reason: `peer answered: ${typeof reply.error === 'string' ? reply.error.slice(0, 200) : 'error'}` };
    const size = Buffer.byteLength(JSON.stringify(reply.envelope ?? null));
    if (size > 8192) return { ok: false, reason: `envelope is ${size} bytes` };
    return verifyServerRecord(reply.envelope, { peerId: target, modelId, numBlocks, clockSkewMs });
  }

  function parseAddrs(addrs: string[] | undefined): Multiaddr[] {
    return (addrs ?? []).map((addr) => {
      try {
        return multiaddr(addr);
      } catch (cause) {
        throw new SwarmConfigError(`invalid multiaddr "${addr}"`, { cause });
      }
    });
  }

  async function lookupDetailed(modelId: string, lookupOptions: LookupOptions = {}): Promise<LookupResult> {
    const providers = await findProviders(allModelProviderCids(modelId), lookupOptions.timeoutMs ?? lookupTimeoutMs);
    if (current && current.record.modelId === modelId) providers.set(peerId, { peerId, addrs: [] });
    const rejected: RejectedRecord[] = [];
    const found = await mapLimit([...providers.values()], concurrency, (provider) =>
      fetchRecordOf(provider, { key: serverRecordKey(modelId, provider.peerId), modelId, numBlocks: lookupOptions.numBlocks }, rejected),
    );
    const records = found.filter((record): record is VerifiedRecord => record !== undefined);
    records.sort((a, b) => a.record.span.start - b.record.span.start || (a.record.peerId < b.record.peerId ? -1 : 1));
    return { records, rejected, providers: providers.size };
  }

  async function listModels(listOptions: { timeoutMs?: number } = {}): Promise<ModelCoverage[]> {
    const providers = await findProviders(allIndexProviderCids(), listOptions.timeoutMs ?? lookupTimeoutMs);
    if (current) providers.set(peerId, { peerId, addrs: [] });
    const rejected: RejectedRecord[] = [];
    const found = await mapLimit([...providers.values()], concurrency, (provider) => fetchRecordOf(provider, { key: peerRecordKey(provider.peerId) }, rejected));
    for (const reject of rejected) log(`listModels: ignored record of ${reject.peerId} (${reject.source}): ${reject.reason}`);
    const byModel = new Map<string, VerifiedRecord[]>();
    for (const record of found) {
      if (!record) continue;
      const list = byModel.get(record.record.modelId) ?? [];
      list.push(record);
      byModel.set(record.record.modelId, list);
    }
    return [...byModel.entries()].map(([modelId, records]) => coverageOf(modelId, records)).sort((a, b) => (a.modelId < b.modelId ? -1 : 1));
  }

  // ---- the public object -------------------------------------------------------------------------------------------

  return {
    peerId,

    async announce(input) {
      if (closed) throw new SwarmConfigError('registry is closed');
      await adopt({ ...input, state: input.state ?? 'online' });
      withdrawn = false;
      return publish();
    },

    async update(patch) {
      if (!info) throw new SwarmConfigError('update() before announce()');
      await adopt({ ...info, ...patch });
      if (patch.state !== undefined && patch.state !== 'offline') withdrawn = false;
      return publish();
    },

    updateLoad(load) {
      if (!info) return;
      const next: AnnounceInput = {
        ...info,
        cacheTokensLeft: load.cacheTokensLeft ?? info.cacheTokensLeft,
        load: {
          activeSessions: load.activeSessions ?? info.load?.activeSessions ?? 0,
          queuedSteps: load.queuedSteps ?? info.load?.queuedSteps ?? 0,
        } satisfies ServerLoad,
      };
      validateInput(next);
      info = next;
      dirty = true;
      schedule(Math.max(0, lastPublishAt + minRepublishMs - Date.now()));
    },

    async withdraw() {
      if (!info) return undefined;
      info = { ...info, state: 'offline' satisfies ServerState };
      withdrawn = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      timerAt = Infinity;
      const result = await publish();
      if (providedModel !== undefined) await cancelProvide(providedModel);
      providedModel = undefined;
      return result;
    },

    current: () => current,

    async lookup(modelId, lookupOptions) {
      return (await lookupDetailed(modelId, lookupOptions)).records;
    },

    lookupDetailed,
    listModels,

    async fetchRecord(target, fetchOptions = {}) {
      return requestRecord(target, parseAddrs(fetchOptions.addrs), fetchOptions.modelId);
    },

    async heartbeat(target, heartbeatOptions = {}) {
      const nonce = randomBytes(16).toString('base64url');
      const reply = await requestJson(
        libp2p,
        target,
        HEARTBEAT_PROTOCOL,
        { v: 1, nonce, ...(heartbeatOptions.modelId !== undefined ? { modelId: heartbeatOptions.modelId } : {}) },
        { signal: deadline(closer.signal, requestTimeoutMs), addrs: parseAddrs(heartbeatOptions.addrs) },
      );
      if (!isObj(reply)) throw new PeerRequestError(target, HEARTBEAT_PROTOCOL, 'malformed reply');
      if (reply.ok !== true) throw new PeerRequestError(target, HEARTBEAT_PROTOCOL, `peer answered: ${typeof reply.error === 'string' ? reply.error.slice(0, 200) : 'error'}`);
      const result = await verifyLoadReport(reply.envelope, { peerId: target, nonce, modelId: heartbeatOptions.modelId, clockSkewMs });
      if (!result.ok) throw new PeerRequestError(target, HEARTBEAT_PROTOCOL, `invalid load report: ${result.reason}`);
      return { record: result.record, envelope: result.envelope };
    },

    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      closer.abort();
      await chain;
      await libp2p.unhandle([ANNOUNCE_PROTOCOL, HEARTBEAT_PROTOCOL]).catch(() => {});
    },
  };
}

/** Aggregates records of one model into block coverage (exported for tests and the route planner). */
export function coverageOf(modelId: string, records: VerifiedRecord[]): ModelCoverage {
  const votes = new Map<number, number>();
  for (const { record } of records) votes.set(record.numBlocks, (votes.get(record.numBlocks) ?? 0) + (record.state === 'online' ? 2 : 1));
  let numBlocks = 0;
  let bestVotes = -1;
  for (const [count, vote] of votes) {
    if (vote > bestVotes || (vote === bestVotes && count > numBlocks)) {
      numBlocks = count;
      bestVotes = vote;
    }
  }
  const blocks: BlockCoverage[] = Array.from({ length: numBlocks }, () => ({ servers: 0, throughput: 0 }));
  let servers = 0;
  let joining = 0;
  for (const { record } of records) {
    if (record.numBlocks !== numBlocks) continue;
    if (record.state === 'joining') joining++;
    if (record.state !== 'online') continue;
    servers++;
    for (let block = record.span.start; block < record.span.end; block++) {
      blocks[block]!.servers++;
      blocks[block]!.throughput += record.throughput.effective;
    }
  }
  const coveredBlocks = blocks.filter((block) => block.servers > 0).length;
  return {
    modelId,
    numBlocks,
    servers,
    joining,
    blocks,
    coveredBlocks,
    complete: numBlocks > 0 && coveredBlocks === numBlocks,
    minThroughput: blocks.length === 0 ? 0 : Math.min(...blocks.map((block) => block.throughput)),
    records,
  };
}


