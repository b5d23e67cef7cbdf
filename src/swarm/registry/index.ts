/**
 * The announce/lookup registry on top of the DHT: a reader (lookup.ts, and the announce/heartbeat requests) that
 * every node can use, and a publisher (publisher.ts) that only servers start, by announcing. A registry that never
 * announces registers no protocol handler on its node.
 */
import type { SwarmNode } from '../node.js';
import { createContext } from './context.js';
import { requestHeartbeat } from './heartbeat.js';
import { requestRecord } from './announce.js';
import { createLookup, parseAddrs } from './lookup.js';
import { createPublisher } from './publisher.js';
import type { Registry, RegistryOptions } from './types.js';

export type * from './types.js';
export { coverageOf, type BlockCoverage, type ModelCoverage } from './coverage.js';
export { REGISTRY_DEFAULTS } from './context.js';

export async function createRegistry(node: SwarmNode, options: RegistryOptions = {}): Promise<Registry> {
  const closer = new AbortController();
  const ctx = createContext(node, options, closer.signal);
  const publisher = createPublisher(ctx);
  const lookup = createLookup(ctx, publisher.current);
  let closed = false;

  return {
    peerId: node.peerId,
    announce: publisher.announce,
    update: publisher.update,
    updateLoad: publisher.updateLoad,
    withdraw: publisher.withdraw,
    current: publisher.current,
    lookupDetailed: lookup.lookupDetailed,
    listModels: lookup.listModels,
    async lookup(modelId, lookupOptions) {
      return (await lookup.lookupDetailed(modelId, lookupOptions)).records;
    },
    fetchRecord(target, fetchOptions = {}) {
      return requestRecord(ctx, target, parseAddrs(fetchOptions.addrs), { modelId: fetchOptions.modelId });
    },
    heartbeat(target, heartbeatOptions = {}) {
      return requestHeartbeat(ctx, target, parseAddrs(heartbeatOptions.addrs), heartbeatOptions.modelId);
    },
    async close() {
      if (closed) return;
      closed = true;
      closer.abort();
      await publisher.close();
    },
  };
}
