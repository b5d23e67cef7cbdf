/**
 * Finding servers. A reader finds providers of the model's (or the models index's) CIDs, then fetches each
 * provider's record: by default it first asks the peer itself over the announce protocol (one round trip, freshest
 * data), and falls back to the DHT value under the peer's key when the peer does not answer or answers with
 * something invalid (the DHT keeps the last signed state of peers that are gone or unreachable, e.g. 'offline' after
 * a withdraw). A DHT get walks the closest peers (several round trips), so asking first is both cheaper and fresher;
 * peers that failed to answer are looked up in the DHT directly for `unreachableMs`. Every record, from either path,
 * is verified by the reader itself.
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { CID } from 'multiformats/cid';
import { SwarmConfigError } from '../errors.js';
import { allIndexProviderCids, allModelProviderCids, peerRecordKey, serverRecordKey } from '../dht/keys.js';
import { verifyServerRecord, type VerifiedRecord } from '../records/index.js';
import { deadline, errorText, type RegistryContext } from './context.js';
import { requestRecord } from './announce.js';
import { coverageOf, type ModelCoverage } from './coverage.js';
import type { LookupOptions, LookupResult, RejectedRecord } from './types.js';

interface ProviderInfo {
  peerId: string;
  addrs: Multiaddr[];
}

interface FetchExpectations {
  key: Uint8Array;
  modelId?: string;
  numBlocks?: number;
}

export interface Lookup {
  lookupDetailed(modelId: string, options?: LookupOptions): Promise<LookupResult>;
  listModels(options?: { timeoutMs?: number }): Promise<ModelCoverage[]>;
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

const newer = (a: VerifiedRecord | undefined, b: VerifiedRecord): boolean => !a || b.record.issuedAt > a.record.issuedAt;

/** Parses caller-given multiaddrs (SwarmConfigError on a bad one). */
export function parseAddrs(addrs: string[] | undefined): Multiaddr[] {
  return (addrs ?? []).map((addr) => {
    try {
      return multiaddr(addr);
    } catch (cause) {
      throw new SwarmConfigError(`invalid multiaddr "${addr}"`, { cause });
    }
  });
}

/** `own()` is this node's current record, if it announces (answered locally, never asked over the network). */
export function createLookup(ctx: RegistryContext, own: () => VerifiedRecord | undefined): Lookup {
  const { node, peerId, settings, log } = ctx;
  const dht = ctx.libp2p.services.dht;
  /** peerId → time until which direct requests are skipped */
  const unreachable = new Map<string, number>();

  async function findProviders(cids: CID[], timeoutMs: number): Promise<Map<string, ProviderInfo>> {
    const found = new Map<string, ProviderInfo>();
    // with an empty routing table kad-dht queries only wait for peers to appear: nobody else can be found
    if (node.routingTableSize === 0) return found;
    const signal = deadline(ctx.closed, timeoutMs);
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
          if (!signal.aborted) log(`findProviders ${cid.toString()} failed: ${errorText(error)}`);
        }
      }),
    );
    return found;
  }

  async function fetchFromDht(provider: ProviderInfo, expect: FetchExpectations, rejected: RejectedRecord[]): Promise<VerifiedRecord | undefined> {
    if (node.routingTableSize === 0) return undefined;
    const signal = deadline(ctx.closed, settings.requestTimeoutMs);
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
      if (!signal.aborted && (error as Error)?.name !== 'NotFoundError') log(`DHT get for ${provider.peerId} ended: ${errorText(error)}`);
    }
    let best: VerifiedRecord | undefined;
    const seen = new Set<string>();
    for (const value of values) {
      const fingerprint = Buffer.from(value).toString('base64');
      if (seen.has(fingerprint)) continue;
      seen.add(fingerprint);
      const result = await verifyServerRecord(value, { peerId: provider.peerId, modelId: expect.modelId, numBlocks: expect.numBlocks, clockSkewMs: settings.clockSkewMs });
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
      const result = await requestRecord(ctx, provider.peerId, provider.addrs, expect);
      unreachable.delete(provider.peerId);
      if (result.ok) return { record: result.record, envelope: result.envelope };
      rejected.push({ peerId: provider.peerId, source: 'direct', reason: result.reason });
    } catch (error) {
      if (!ctx.closed.aborted) unreachable.set(provider.peerId, Date.now() + settings.unreachableMs);
      log(`direct record request to ${provider.peerId} failed: ${errorText(error)}`);
    }
    return undefined;
  }

  async function fetchRecordOf(provider: ProviderInfo, expect: FetchExpectations, rejected: RejectedRecord[]): Promise<VerifiedRecord | undefined> {
    if (provider.peerId === peerId) {
      const current = own();
      const mine = current && (expect.modelId === undefined || current.record.modelId === expect.modelId) ? current : undefined;
      return mine && (await verifyServerRecord(mine.envelope, { clockSkewMs: settings.clockSkewMs })).ok ? mine : undefined;
    }
    switch (settings.direct) {
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

  async function lookupDetailed(modelId: string, options: LookupOptions = {}): Promise<LookupResult> {
    const providers = await findProviders(allModelProviderCids(modelId), options.timeoutMs ?? settings.lookupTimeoutMs);
    if (own()?.record.modelId === modelId) providers.set(peerId, { peerId, addrs: [] });
    const rejected: RejectedRecord[] = [];
    const found = await mapLimit([...providers.values()], settings.concurrency, (provider) =>
      fetchRecordOf(provider, { key: serverRecordKey(modelId, provider.peerId), modelId, numBlocks: options.numBlocks }, rejected),
    );
    const records = found.filter((record): record is VerifiedRecord => record !== undefined);
    records.sort((a, b) => a.record.span.start - b.record.span.start || (a.record.peerId < b.record.peerId ? -1 : 1));
    return { records, rejected, providers: providers.size };
  }

  async function listModels(options: { timeoutMs?: number } = {}): Promise<ModelCoverage[]> {
    const providers = await findProviders(allIndexProviderCids(), options.timeoutMs ?? settings.lookupTimeoutMs);
    if (own()) providers.set(peerId, { peerId, addrs: [] });
    const rejected: RejectedRecord[] = [];
    const found = await mapLimit([...providers.values()], settings.concurrency, (provider) => fetchRecordOf(provider, { key: peerRecordKey(provider.peerId) }, rejected));
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

  return { lookupDetailed, listModels };
}
