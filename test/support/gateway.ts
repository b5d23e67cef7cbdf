/**
 * An in-process gateway on an in-process swarm (memory transport, real block servers on stories260K), with a real
 * ledger and shared state. `startTestGateway` returns its URL and the parts tests look into.
 */
import '../../src/util/polyfills.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import type { BlockServerComponents } from '../../src/server/settings.js';
import { createGateway, type Gateway, type GatewaySettings } from '../../src/gateway/gateway.js';
import type { AuthContext, Ledger, SharedState } from '../../src/gateway/types.js';
import { createRegistry } from '../../src/swarm/registry/index.js';
import { openStories, STORIES_GGUF } from './models.js';
import { FAST, startTestSwarm, type TestSwarm } from './swarm.js';
import { openTestLedger, openTestState } from './gateway-stores.js';

export interface TestGateway {
  readonly url: string;
  readonly gateway: Gateway;
  readonly swarm: TestSwarm;
  readonly ledger: Ledger;
  readonly state: SharedState;
  readonly source: LoadedModelSource;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  /** Block spans of the servers (default two servers: [0,3) and [3,5)); 'all' is a whole-model server. */
  readonly spans?: readonly ({ start: number; end: number } | 'all')[];
  /** Components added to server i's (e.g. an `ethAccount`, so it announces a verified address). */
  readonly serverComponents?: (index: number) => Partial<BlockServerComponents>;
  readonly settings?: Partial<GatewaySettings>;
  readonly authenticate?: (authorization: string | undefined, clientAddress: string) => Promise<AuthContext>;
  readonly ledger?: Ledger;
  readonly state?: SharedState;
}

/** The public model name test gateways serve stories260K under. */
export const TEST_MODEL = 'stories260K';

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const source = await openStories();
  const swarm = await startTestSwarm(source, options.spans ?? [{ start: 0, end: 3 }, { start: 3, end: 5 }], undefined, options.serverComponents);
  const node = await swarm.client();
  const registry = await createRegistry(node, FAST);
  const ledger = options.ledger ?? (await openTestLedger());
  const state = options.state ?? (await openTestState());
  const gateway = await createGateway(
    { node, registry, ledger, state, ...(options.authenticate ? { authenticate: options.authenticate } : {}) },
    { models: [{ name: TEST_MODEL, model: { model: STORIES_GGUF, modelId: swarm.modelId } }], ...options.settings },
  );
  const url = await gateway.listen(0);
  return {
    url,
    gateway,
    swarm,
    ledger,
    state,
    source,
    async close() {
      await gateway.close();
      await registry.close();
      await swarm.stop();
      if (!options.ledger) await ledger.close();
      if (!options.state) await state.close();
      source.close();
    },
  };
}
