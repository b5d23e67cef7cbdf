/**
 * A gateway: the swarm's front door over HTTP. It joins the swarm as a client holding each model's embeddings and
 * LM head, serves the Far Mesh and OpenAI-compatible APIs, records usage in the ledger, and shares rate limits,
 * revocations and live sessions with other gateways through the shared state.
 *
 *   const gateway = await createGateway({ node, registry, ledger, state }, { models: [{ name, model: { model: path } }] });
 *   await gateway.listen(8100);
 *   …
 *   await gateway.close();
 *
 * Components (node, registry, ledger, state, API keys) are passed in; `openGateway` (open.ts) builds them from
 * settings. close() stops the models, the HTTP server and the receipt sender; components passed in are not closed.
 */
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { BanList } from '../client/bans.js';
import type { SwarmNode } from '../swarm/node.js';
import type { Registry } from '../swarm/registry/index.js';
import { silentLogger, type ComponentLogger } from '../util/logger.js';
import { SOFTWARE_VERSION } from '../version.js';
import { createGatewayApp } from './app.js';
import type { GatewayContext } from './context.js';
import { DASHBOARD_PUSH_MS, DEFAULT_GATEWAY_HOST, DEFAULT_PRICE_PER_TOKEN_FAR, RECEIPT_CLOSE_FLUSH_MS, RECOVER_INTERVAL_MS, RESPONSE_DRAIN_MS, SHUTDOWN_GRACE_MS, STALE_REQUEST_MS } from './defaults.js';
import { GenerationService } from './generation.js';
import { parseFar } from './ledger/money.js';
import { GatewayMetrics } from './metrics.js';
import { EvidenceReporter } from './receipts/evidence.js';
import { ReceiptSender } from './receipts/sender.js';
import { ReceiptSigner, type ReceiptSettings } from './receipts/sign.js';
import { ModelCatalog } from './model-catalog.js';
import { ModelHost, type ModelHostSettings } from './model-host.js';
import type { AuthContext, Ledger, SharedState, UsageEntry } from './types.js';

export interface GatewayComponents {
  readonly node: SwarmNode;
  readonly registry: Registry;
  readonly ledger: Ledger;
  readonly state: SharedState;
  /** Resolves a request's Authorization header; default: everyone anonymous, limited by client address only. */
  readonly authenticate?: GatewayContext['authenticate'];
  readonly logger?: ComponentLogger;
}

export interface GatewaySettings {
  /** The models to serve; the first is the default. */
  readonly models: readonly ModelHostSettings[];
  /** Price per generated token in FAR (decimal string). Default DEFAULT_PRICE_PER_TOKEN_FAR. */
  readonly pricePerTokenFar?: string;
  /** This gateway's name in the ledger (several may share one database). Default: host:port once listening. */
  readonly gatewayId?: string;
  /** How often the dashboard feed pushes a snapshot (ms). Default DASHBOARD_PUSH_MS. */
  readonly dashboardPushMs?: number;
  /** Sign a receipt per server per request with this payer account and send them to the oracle; unset: none. */
  readonly receipts?: ReceiptSettings;
}

export interface Gateway {
  readonly context: GatewayContext;
  readonly models: ModelCatalog;
  readonly app: ReturnType<typeof createGatewayApp>;
  /** Starts the HTTP server; resolves with its URL. */
  listen(port: number, host?: string): Promise<string>;
  /** http://host:port once listening. */
  readonly url: string | undefined;
  /** Aborts generations in flight (recorded as `stopped`), stops the HTTP server and the models. */
  close(): Promise<void>;
}

const anonymous = async (_authorization: string | undefined, clientAddress: string): Promise<AuthContext> => ({ keyId: null, subject: `ip:${clientAddress}`, limits: {}, admin: false });

/** Loads every model (tokenizer, embeddings, LM head), recovers the ledger, and builds the HTTP app. */
export async function createGateway(components: GatewayComponents, settings: GatewaySettings): Promise<Gateway> {
  if (settings.models.length === 0) throw new RangeError('a gateway needs at least one model');
  const logger = components.logger ?? silentLogger;
  const log = logger.forComponent('corolla:gateway');
  const price = settings.pricePerTokenFar ?? DEFAULT_PRICE_PER_TOKEN_FAR;
  const pricePerTokenUnits = parseFar(price);
  const bans = new BanList();
  const hosts = settings.models.map((m) => new ModelHost({ node: components.node, registry: components.registry, bans, logger }, m));
  const models = new ModelCatalog(hosts);
  const metrics = new GatewayMetrics();
  const settingsView = { gatewayId: settings.gatewayId ?? `gateway-${components.node.peerId.slice(-12)}`, pricePerTokenFar: price, version: SOFTWARE_VERSION, dashboardPushMs: settings.dashboardPushMs ?? DASHBOARD_PUSH_MS };
  const receipts = settings.receipts;
  const signer = receipts ? new ReceiptSigner(receipts.account, receipts.chainId, receipts.rewardPool) : undefined;
  const sender = receipts ? new ReceiptSender({ ledger: components.ledger, log: logger.forComponent('corolla:gateway:receipts') }, receipts) : undefined;
  // a server a spot-check caught is reported to the oracle with the evidence (the client has banned it already)
  const reporter = receipts ? new EvidenceReporter({ log: logger.forComponent('corolla:gateway:evidence') }, receipts) : undefined;
  if (reporter) for (const host of hosts) host.model.addEventListener('spot-check:failed', (event) => reporter.report(event.detail));
  const generations = new GenerationService({ ledger: components.ledger, state: components.state, metrics, log, ...(signer ? { receipts: signer } : {}) }, { gatewayId: settingsView.gatewayId, pricePerTokenUnits });
  const context: GatewayContext = {
    models,
    generations,
    ledger: components.ledger,
    state: components.state,
    metrics,
    log,
    authenticate: components.authenticate ?? anonymous,
    settings: settingsView,
  };
  const recover = async () => {
    try {
      // an interrupted request is signed for what its last write recorded: the work was received up to there
      const sign = signer ? (entry: UsageEntry) => signer.sign({ id: entry.request.id, modelId: entry.request.model }, entry.contributions, entry.request.endedAt ?? new Date()) : undefined;
      const n = await components.ledger.recover({ gatewayId: settingsView.gatewayId, staleMs: STALE_REQUEST_MS, ...(sign ? { sign } : {}) });
      if (n > 0) log('marked %d unfinished request(s) as interrupted', n);
    } catch (error) {
      log.error('ledger recovery failed: %s', (error as Error).message);
    }
  };
  await recover();
  try {
    await Promise.all(hosts.map((host) => host.start()));
  } catch (error) {
    await Promise.all(hosts.map((host) => host.close().catch(() => {})));
    throw error;
  }
  const sweeper = setInterval(() => void recover(), RECOVER_INTERVAL_MS);
  sweeper.unref();
  if (receipts) log('signing receipts as %s for chain %d, pool %s; oracle %s', receipts.account.address, receipts.chainId, receipts.rewardPool, receipts.oracleUrl);
  sender?.start();
  const app = createGatewayApp(context);
  let server: ServerType | undefined;
  let url: string | undefined;
  let closed = false;

  return {
    context,
    models,
    app,
    get url() {
      return url;
    },
    listen(port: number, host = DEFAULT_GATEWAY_HOST) {
      return new Promise<string>((resolve, reject) => {
        const s = serve({ fetch: app.fetch, port, hostname: host }, (info: AddressInfo) => {
          url = `http://${info.address.includes(':') ? `[${info.address}]` : info.address}:${info.port}`;
          log('listening on %s', url);
          resolve(url);
        });
        s.once('error', reject);
        server = s;
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      await generations.stop(SHUTDOWN_GRACE_MS);
      // after the generations, so their receipts are in the outbox for the last flush
      await sender?.close();
      await Promise.all(hosts.map((host) => host.close().catch(() => {})));
      // checks finish when their hosts close; their reports get as long as the last receipts' flush
      if (reporter) await Promise.race([reporter.settled(), new Promise((resolve) => setTimeout(resolve, RECEIPT_CLOSE_FLUSH_MS).unref())]);
      reporter?.close();
      if (server) {
        const s = server;
        // The stopped generations' streams still write their last event: let responses in flight end (close()
        // drops idle connections at once), and cut what is left — dashboard feeds — after a short drain.
        await new Promise<void>((resolve) => {
          const cut = setTimeout(() => (s as { closeAllConnections?: () => void }).closeAllConnections?.(), RESPONSE_DRAIN_MS);
          s.close(() => {
            clearTimeout(cut);
            resolve();
          });
        });
      }
    },
  };
}
