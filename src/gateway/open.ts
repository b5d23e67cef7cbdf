/**
 * `openGateway`: a gateway built from settings alone — its own swarm node and registry, the ledger (PostgreSQL at
 * `databaseUrl`, else PGlite in `dataDir`), the shared state (Redis at `redisUrl`, else memory) and API keys — for
 * the CLI and for applications that want one call. close() closes everything it opened.
 */
import { createSwarmNode, type SwarmNode } from '../swarm/node.js';
import { createRegistry, type Registry, type RegistryOptions } from '../swarm/registry/index.js';
import type { OnProgress } from '../util/progress.js';
import { silentLogger, type ComponentLogger } from '../util/logger.js';
import { loadApiKeys } from './auth/api-keys.js';
import { authenticate } from './auth/authenticate.js';
import { createGateway, type Gateway, type GatewaySettings } from './gateway.js';
import { openLedger } from './ledger/open.js';
import type { ModelHostSettings } from './model-host.js';
import { openSharedState } from './state/open.js';
import type { Ledger, SharedState } from './types.js';

export interface OpenGatewaySettings extends Omit<GatewaySettings, 'models'> {
  /** Models by public name and file (path, HF directory or Hub id). */
  readonly models: readonly { name: string; path: string; modelId?: string; tokenizerPath?: string }[];
  /** Multiaddrs (with /p2p/) of swarm peers. */
  readonly bootstrap: readonly string[];
  readonly psk?: Uint8Array;
  /** PostgreSQL URL of the ledger; PGlite in `dataDir` when absent. */
  readonly databaseUrl?: string;
  /** Where PGlite keeps the ledger when there is no database URL. */
  readonly dataDir: string;
  /** Redis URL of the shared state; memory when absent. */
  readonly redisUrl?: string;
  /** API-keys file; without it every client is anonymous (rate-limited by address only). */
  readonly apiKeysFile?: string;
  readonly threads?: number;
  readonly hub?: ModelHostSettings['model']['hub'];
  readonly registryOptions?: RegistryOptions;
}

export interface OpenedGateway extends Gateway {
  readonly node: SwarmNode;
}

export async function openGateway(settings: OpenGatewaySettings, options: { logger?: ComponentLogger; onProgress?: OnProgress } = {}): Promise<OpenedGateway> {
  const logger = options.logger ?? silentLogger;
  const opened: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const close of opened.reverse()) await close().catch(() => {});
  };
  try {
    const keys = settings.apiKeysFile ? await loadApiKeys(settings.apiKeysFile) : undefined;
    const ledger: Ledger = await openLedger({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, cacheRoot: settings.hub?.cacheRoot, logger });
    opened.push(() => ledger.close());
    const state: SharedState = await openSharedState({ redisUrl: settings.redisUrl, logger });
    opened.push(() => state.close());
    const node = await createSwarmNode({ bootstrap: [...settings.bootstrap], psk: settings.psk, dhtClientMode: true, logger });
    opened.push(() => node.stop());
    await node.waitForPeers(1, 10_000).catch(() => {});
    const registry: Registry = await createRegistry(node, { ...settings.registryOptions, logger });
    opened.push(() => registry.close());
    const gateway = await createGateway(
      { node, registry, ledger, state, logger, authenticate: (header, clientAddress) => authenticate(header, { keys, state, clientAddress }) },
      {
        ...settings,
        models: settings.models.map((m) => ({
          name: m.name,
          model: { model: m.path, modelId: m.modelId, tokenizerPath: m.tokenizerPath, threads: settings.threads, hub: settings.hub, onProgress: options.onProgress },
        })),
      },
    );
    return {
      node,
      context: gateway.context,
      models: gateway.models,
      app: gateway.app,
      listen: (port, host) => gateway.listen(port, host),
      get url() {
        return gateway.url;
      },
      async close() {
        await gateway.close();
        await closeAll();
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
