/**
 * Publishing a server's record. kad-dht keeps ONE value per key, so every key has exactly one writer: this server
 * puts its own signed record under /corolla/<model>/<peerId> and /corolla-peer/<peerId>, and joins the model's and
 * the models index's provider records (its shard of each), which aggregate many peers per CID (see dht/keys.ts).
 *
 * Records are re-signed and re-put every `refreshMs` with a TTL of `ttlMs`, immediately on state changes, and on
 * load changes at most every `minRepublishMs`. The first announce also starts serving the announce and heartbeat
 * protocols on the node: only a node that announces answers them.
 */
import type { QueryEvent } from '@libp2p/kad-dht';
import { PROTOCOLS } from '../../wire/protocols.js';
import { checkSchema, intIn, strictObject } from '../../wire/schema.js';
import { InvalidRecordError, SwarmConfigError } from '../errors.js';
import { indexProviderCid, INDEX_SCOPE, modelProviderCid, peerRecordKey, providerShard, serverRecordKey } from '../dht/keys.js';
import type { CID } from 'multiformats/cid';
import { createSignedServerRecord, encodeEnvelope, MAX_ADDRS, type ServerLoad, type ServerState, type VerifiedRecord } from '../records/index.js';
import { deadline, errorText, type RegistryContext } from './context.js';
import { serveAnnounce } from './announce.js';
import { serveHeartbeat } from './heartbeat.js';
import type { AnnounceInput, LoadUpdate, PublishResult, RegistryPublisher } from './types.js';

const loadUpdateSchema = strictObject({
  activeSessions: intIn(0, 1_000_000).optional(),
  queuedSteps: intIn(0, 1_000_000_000).optional(),
  cacheTokensLeft: intIn(0).optional(),
});

export interface Publisher extends RegistryPublisher {
  /** Stops the timers, waits for a publish in flight, and unregisters the handlers (if serving). */
  close(): Promise<void>;
}

export function createPublisher(ctx: RegistryContext): Publisher {
  const { node, peerId, settings, log } = ctx;
  const dht = ctx.libp2p.services.dht;
  let info: AnnounceInput | undefined;
  let current: VerifiedRecord | undefined;
  let serving: Promise<void> | undefined;
  let withdrawn = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Infinity;
  let lastPublishAt = 0;
  let providedAt = 0;
  let providedModel: string | undefined;
  /** the CIDs provided for providedModel (they move with the shard epoch) */
  let providedCids: CID[] = [];
  let retryDelay = 500;
  /** set when announced fields changed after the last signature */
  let dirty = false;
  let chain: Promise<unknown> = Promise.resolve();

  /** Registers the announce and heartbeat handlers, once; a failure (another announcer on this node) is retried. */
  function serve(): Promise<void> {
    serving ??= (async () => {
      await serveAnnounce(ctx, () => current);
      try {
        await serveHeartbeat(ctx, () => info);
      } catch (error) {
        await ctx.libp2p.unhandle(PROTOCOLS.announce.id).catch(() => {});
        throw error;
      }
    })().catch((error: unknown) => {
      serving = undefined;
      throw error;
    });
    return serving;
  }

  async function sign(from: AnnounceInput | undefined = info): Promise<VerifiedRecord> {
    if (!from) throw new SwarmConfigError('nothing announced');
    const envelope = await createSignedServerRecord(node.privateKey, { ...from, addrs: from.addrs ?? node.multiaddrs.slice(0, MAX_ADDRS) }, { ttlMs: settings.ttlMs });
    return { record: envelope.record, envelope };
  }

  /** Adopts new announced fields only if they make a valid record (so a bad update cannot stop the refreshes). */
  async function adopt(next: AnnounceInput): Promise<void> {
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
    for (const result of results) if (result.status === 'rejected') log(`put failed: ${errorText(result.reason)}`);
    return Math.min(...results.map((result) => (result.status === 'fulfilled' ? result.value : 0)));
  }

  /** The CIDs this peer provides for `modelId` in the current shard epoch (dht/keys.ts). */
  function cidsFor(modelId: string): CID[] {
    const now = Date.now();
    return [modelProviderCid(modelId, providerShard(peerId, modelId, now)), indexProviderCid(providerShard(peerId, INDEX_SCOPE, now))];
  }

  async function provide(cids: CID[], signal: AbortSignal): Promise<boolean> {
    const results = await Promise.allSettled(cids.map((cid) => drainCount(dht.provide(cid, { signal }), 'ADD_PROVIDER')));
    for (const result of results) if (result.status === 'rejected') log(`provide failed: ${errorText(result.reason)}`);
    return results.every((result) => result.status === 'fulfilled' && result.value > 0);
  }

  async function cancelProvide(cids: CID[]): Promise<void> {
    for (const cid of cids) {
      await dht.cancelReprovide(cid).catch((error: unknown) => log(`cancelReprovide failed: ${errorText(error)}`));
    }
  }

  const sameCids = (a: CID[], b: CID[]): boolean => a.length === b.length && a.every((cid, i) => cid.equals(b[i]!));

  async function publishOnce(): Promise<PublishResult> {
    dirty = false;
    const record = await sign();
    current = record;
    lastPublishAt = Date.now();
    let replicas = 0;
    if (node.routingTableSize > 0) {
      const signal = deadline(ctx.closed, settings.publishTimeoutMs);
      replicas = await putBoth(record, signal);
      const modelId = record.record.modelId;
      const cids = cidsFor(modelId);
      const moved = !sameCids(cids, providedCids);
      if (record.record.state !== 'offline' && (providedModel !== modelId || moved || Date.now() - providedAt > settings.reprovideMs)) {
        if (providedModel !== undefined && moved) await cancelProvide(providedCids.filter((old) => !cids.some((cid) => cid.equals(old))));
        if (await provide(cids, signal)) {
          providedAt = Date.now();
          providedModel = modelId;
          providedCids = cids;
        }
      }
    }
    const provided = providedModel === record.record.modelId;
    const { state, modelId, span } = record.record;
    log(`published ${state} record for ${modelId} [${span.start},${span.end}) to ${replicas} peers${provided ? '' : ' (providers not yet published)'}`);
    return { record, replicas, provided };
  }

  /** Serialises publishes; each one reschedules the next refresh (or a quick retry while nothing was stored remotely). */
  function publish(): Promise<PublishResult> {
    const run = chain.then(async () => {
      let result: PublishResult;
      try {
        result = await publishOnce();
      } catch (error) {
        retryLater();
        throw error;
      }
      if (result.replicas === 0 || !result.provided) {
        retryLater();
      } else {
        retryDelay = 500;
        // a load change that arrived while we were publishing goes out after minRepublishMs, not at the next refresh
        schedule(dirty ? Math.max(0, lastPublishAt + settings.minRepublishMs - Date.now()) : settings.refreshMs, true);
      }
      return result;
    });
    chain = run.catch(() => {});
    return run;
  }

  function retryLater(): void {
    schedule(Math.min(retryDelay, settings.refreshMs), true);
    retryDelay = Math.min(retryDelay * 2, settings.refreshMs);
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
      publish().catch((error: unknown) => log.error(`publish failed: ${errorText(error)}`));
    }, Math.max(0, delayMs));
    timer.unref?.();
  }

  function stopTimer(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerAt = Infinity;
  }

  return {
    async announce(input) {
      if (closed) throw new SwarmConfigError('registry is closed');
      await adopt({ ...input, state: input.state ?? 'online' });
      await serve();
      withdrawn = false;
      return publish();
    },

    async update(patch) {
      if (!info) throw new SwarmConfigError('update() before announce()');
      await adopt({ ...info, ...patch });
      if (patch.state !== undefined && patch.state !== 'offline') withdrawn = false;
      return publish();
    },

    updateLoad(load: LoadUpdate) {
      const checked = checkSchema(loadUpdateSchema, load);
      if (!checked.ok) throw new InvalidRecordError(`load update: ${checked.reason}`);
      if (!info) return;
      info = {
        ...info,
        cacheTokensLeft: load.cacheTokensLeft ?? info.cacheTokensLeft,
        load: {
          activeSessions: load.activeSessions ?? info.load?.activeSessions ?? 0,
          queuedSteps: load.queuedSteps ?? info.load?.queuedSteps ?? 0,
        } satisfies ServerLoad,
      };
      dirty = true;
      schedule(Math.max(0, lastPublishAt + settings.minRepublishMs - Date.now()));
    },

    async withdraw() {
      if (!info) return undefined;
      info = { ...info, state: 'offline' satisfies ServerState };
      withdrawn = true;
      stopTimer();
      const result = await publish();
      if (providedModel !== undefined) await cancelProvide(providedCids);
      providedModel = undefined;
      providedCids = [];
      return result;
    },

    current: () => current,

    async close() {
      if (closed) return;
      closed = true;
      stopTimer();
      await chain;
      if (serving) {
        await serving.catch(() => {});
        await ctx.libp2p.unhandle([PROTOCOLS.announce.id, PROTOCOLS.heartbeat.id]).catch(() => {});
      }
    },
  };
}
