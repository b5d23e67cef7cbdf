/**
 * A block server: holds blocks [start, end) of one model, serves them over the block protocol, and announces itself
 * on the DHT. Lifecycle:
 *
 *   choose span (fixed, 'all', or the weakest-covered window of N blocks) → announce JOINING → load the span
 *   → measure throughput → serve → start services → announce ONLINE → … → stop(): stop services, announce OFFLINE,
 *   close streams, free the engine.
 *
 * Optional features are services (services/): whole-model generation and rebalancing. The server's own parts:
 * settings.ts (options and defaults), span-loading.ts (sizing and loading), announcer.ts (records), block-service.ts
 * (the protocol). It reports sessions, announcements and moves as typed events (events.ts).
 */
import type { Stream } from '@libp2p/interface';
import { TypedEventEmitter, type TypedEventTarget } from 'main-event';
import { signBinding } from '../chain/binding.js';
import type { SpanExecutor } from '../engine/types.js';
import type { ModelSource } from '../model/types.js';
import type { SwarmNode } from '../swarm/node.js';
import type { ServerRecord, Throughput } from '../swarm/records/index.js';
import { createRegistry, type Registry } from '../swarm/registry/index.js';
import { formatBlockRange, type BlockRange } from '../util/blocks.js';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import { BLOCK_PROTOCOL } from '../wire/protocols.js';
import { Announcer } from './announcer.js';
import { StepAttester } from './attestation.js';
import { BlockService } from './block-service.js';
import { STREAM_LIMITS, WITHDRAW_TIMEOUT_MS } from './defaults.js';
import { ServerConfigError, ShuttingDownError } from './errors.js';
import { blockDialer } from './forward-links.js';
import type { BlockServerEvents } from './events.js';
import { WholeModelGeneration } from './services/generation.js';
import type { MoveResult, ServiceFactories, ServiceHost, ServiceMap } from './services/types.js';
import { resolveSettings, type BlockServerComponents, type BlockServerSettings, type ResolvedSettings } from './settings.js';
import { chooseSpan, type SpanView } from './span-choice.js';
import { autoSpanLength, cacheTokensFor, estimateCompute, loadServedSpan } from './span-loading.js';
import { detectAccelerator, estimateNetworkThroughput, measureCompute, profileBlock } from './throughput.js';

export interface BlockServerOptions<S extends ServiceMap = ServiceMap> extends BlockServerSettings {
  /** Optional features, each built from the server (see services/). Default: none. */
  readonly services?: ServiceFactories<S>;
  /** Start at once (default true); with false, attach listeners first and call start(). */
  readonly start?: boolean;
}

export interface BlockServer<S extends ServiceMap = ServiceMap> extends TypedEventTarget<BlockServerEvents> {
  readonly peerId: string;
  readonly modelId: string;
  /** Blocks in the model. */
  readonly numBlocks: number;
  /** The span served now. */
  readonly range: BlockRange;
  /** True when it serves whole-model generation. */
  readonly wholeModel: boolean;
  readonly span: SpanExecutor;
  readonly service: BlockService;
  readonly throughput: Throughput;
  readonly registry: Registry;
  readonly services: S;
  /** Our latest signed record. */
  record(): ServerRecord | undefined;
  /** Chooses and loads a span, starts the services, announces ONLINE. */
  start(): Promise<void>;
  /** Stops the services, announces OFFLINE, closes every stream and session, frees the engine. Does not stop the node. */
  stop(): Promise<void>;
}

/** Creates a block server (started unless `options.start` is false). */
export async function createBlockServer<S extends ServiceMap = ServiceMap>(components: BlockServerComponents, options: BlockServerOptions<S>): Promise<BlockServer<S>> {
  const server = new CorollaBlockServer<S>(components, options);
  if (options.start !== false) await server.start();
  return server;
}

const round = (x: number) => Math.round(x * 100) / 100;
const message = (error: unknown): string => (error as Error)?.message ?? String(error);

class CorollaBlockServer<S extends ServiceMap> extends TypedEventEmitter<BlockServerEvents> implements BlockServer<S>, ServiceHost {
  readonly node: SwarmNode;
  readonly source: ModelSource;
  readonly logger: ComponentLogger;
  readonly settings: ResolvedSettings;
  readonly services: S;
  readonly numBlocks: number;
  private readonly log: Logger;
  private readonly networkThroughput: number;
  private currentRange: BlockRange | undefined;
  private currentSpan: SpanExecutor | undefined;
  private blockServiceNow: BlockService | undefined;
  private announcer: Announcer | undefined;
  private registryNow: Registry | undefined;
  private bytesPerBlock = 0;
  private measured: Throughput;
  private started = false;
  private moving = false;
  private isStopped = false;

  constructor(private readonly components: BlockServerComponents, options: BlockServerOptions<S>) {
    super();
    this.node = components.node;
    this.source = components.source;
    this.logger = components.logger ?? silentLogger;
    this.log = this.logger.forComponent('corolla:server');
    this.numBlocks = this.source.config.numLayers;
    const { services: factories = {} as ServiceFactories<S>, start: _start, ...settings } = options;
    this.settings = resolveSettings(settings, this.numBlocks);
    const ethAccount = components.ethAccount;
    if (ethAccount && settings.ethAddress !== undefined && ethAccount.address.toLowerCase() !== settings.ethAddress.toLowerCase()) {
      throw new ServerConfigError(`ethAddress ${settings.ethAddress} is not the address of the given Ethereum account (${ethAccount.address})`);
    }
    this.networkThroughput = round(estimateNetworkThroughput(this.source.config.hiddenSize, { bitsPerSecond: this.settings.networkBitsPerSecond }));
    this.measured = { compute: 0, network: this.networkThroughput, effective: 0 };
    this.services = Object.fromEntries(Object.entries(factories).map(([name, create]) => [name, create(this)])) as S;
  }

  get peerId(): string {
    return this.node.peerId;
  }

  get modelId(): string {
    return this.settings.modelId;
  }

  get range(): BlockRange {
    if (!this.currentRange) throw new ServerConfigError('the server has not started');
    return this.currentRange;
  }

  get wholeModel(): boolean {
    return Object.values(this.services).some((service) => service instanceof WholeModelGeneration);
  }

  get span(): SpanExecutor {
    if (!this.currentSpan) throw new ServerConfigError('the server is between spans');
    return this.currentSpan;
  }

  get service(): BlockService {
    if (!this.blockServiceNow) throw new ServerConfigError('the server is between spans');
    return this.blockServiceNow;
  }

  get blockService(): BlockService | undefined {
    return this.blockServiceNow;
  }

  get throughput(): Throughput {
    return this.measured;
  }

  get registry(): Registry {
    if (!this.registryNow) throw new ServerConfigError('the server has not started');
    return this.registryNow;
  }

  get busy(): boolean {
    return this.moving || this.isStopped;
  }

  get stopped(): boolean {
    return this.isStopped;
  }

  record(): ServerRecord | undefined {
    return this.registryNow?.current()?.record;
  }

  spanViews(): Promise<SpanView[]> {
    return this.announcer?.views() ?? Promise.resolve([]);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { settings, source, node } = this;
    const { ethAccount } = this.components;
    // one block's tensors, read once: the engine footprint (span sizing, JOINING estimate) and the quantization
    const profile = profileBlock(source, settings.fixedRange?.start ?? 0);
    this.bytesPerBlock = profile.engineBytes;
    this.registryNow = this.components.registry ?? (await createRegistry(node, { ...settings.registryOptions, logger: this.logger }));
    this.announcer = new Announcer({
      registry: this.registryNow,
      settings,
      numBlocks: this.numBlocks,
      quantization: profile.quantization,
      accelerator: await detectAccelerator({ cuda: settings.executionProvider === 'cuda' }),
      ...(ethAccount ? { eth: { address: ethAccount.address, binding: await signBinding(ethAccount, node.peerId) } } : {}),
      log: this.log,
      announced: (state, blocks) => this.safeDispatchEvent('announced', { detail: { state, blocks } }),
    });
    if (settings.fixedRange) {
      this.currentRange = settings.fixedRange;
    } else {
      this.currentRange = chooseSpan(await this.spanViews(), this.numBlocks, autoSpanLength(source, settings, this.bytesPerBlock), { self: node.peerId });
      this.log(`chose blocks ${formatBlockRange(this.currentRange)} of ${this.numBlocks}${settings.numBlocks === undefined ? ' (sized from free memory)' : ''}`);
    }

    const started: ServiceMap[string][] = [];
    let handled = false;
    try {
      // libp2p's per-connection stream limit is a backstop above our per-peer quota (which answers with a typed error)
      const maxStreams = Math.max(STREAM_LIMITS.maxInboundStreams, 2 * (settings.maxStreamsPerPeer ?? 0));
      await node.libp2p.handle(BLOCK_PROTOCOL, (stream, connection) => (this.blockServiceNow && !this.busy ? this.blockServiceNow.handleStream(stream, connection) : this.refuse(stream)), { ...STREAM_LIMITS, maxInboundStreams: maxStreams });
      handled = true;
      // the same protocol on direct lanes, where clients and other servers can open them (swarm/lanes.ts)
      await node.lanes?.handle(BLOCK_PROTOCOL, (socket, peer) => (this.blockServiceNow && !this.busy ? void this.blockServiceNow.handleLane(socket, peer) : socket.destroy()));
      await this.load(this.currentRange);
      for (const service of Object.values(this.services)) {
        await service.start();
        started.push(service);
      }
      await this.goOnline();
    } catch (error) {
      this.isStopped = true; // nothing left for stop() to do
      for (const service of started.reverse()) await Promise.resolve(service.stop()).catch(() => {});
      this.blockServiceNow?.close();
      await this.currentSpan?.dispose().catch(() => {});
      await this.registryNow.withdraw().catch(() => {});
      await this.release(handled);
      throw error;
    }
  }

  async stop(): Promise<void> {
    if (this.isStopped) return;
    this.isStopped = true;
    if (!this.started) return;
    for (const [name, service] of Object.entries(this.services).reverse()) {
      await Promise.resolve(service.stop()).catch((error: unknown) => this.log.error(`stopping service ${name} failed: ${message(error)}`));
    }
    // Offline first, so that no new client picks us while we close; bounded so a dead DHT cannot hang shutdown.
    if (this.announcer && this.currentRange) {
      await Promise.race([this.announcer.offline(this.currentRange), new Promise((resolve) => setTimeout(resolve, WITHDRAW_TIMEOUT_MS).unref())]);
    }
    this.blockServiceNow?.close();
    await this.release(true);
    await this.currentSpan?.dispose().catch(() => {});
  }

  async moveTo(to: BlockRange): Promise<MoveResult> {
    const from = this.range;
    this.moving = true;
    try {
      this.blockServiceNow?.close(`the server is moving to blocks ${formatBlockRange(to)}`);
      await this.currentSpan?.dispose();
      this.blockServiceNow = undefined;
      this.currentSpan = undefined;
      try {
        await this.load(to);
        await this.goOnline();
      } catch (error) {
        if (this.stopped) throw error;
        this.log.error(`moving to ${formatBlockRange(to)} failed (${message(error)}); going back to ${formatBlockRange(from)}`);
        await this.load(from);
        await this.goOnline();
        return { moved: false, error };
      }
    } finally {
      this.moving = false;
    }
    this.safeDispatchEvent('rebalanced', { detail: { from, to } });
    return { moved: true };
  }

  /** Announces JOINING for `target`, loads and measures it, and makes it the span served. */
  private async load(target: BlockRange): Promise<void> {
    const { settings, source } = this;
    const announcer = this.announcer!;
    const blocks = target.end - target.start;
    await announcer.joining(target, { compute: round(estimateCompute(this.bytesPerBlock, blocks)), network: this.networkThroughput }, cacheTokensFor(source, settings, blocks));
    const span = await loadServedSpan(source, target, settings, this.components.onProgress);
    if (this.stopped) {
      await span.dispose();
      throw new ShuttingDownError('the server was stopped while loading');
    }
    const compute = settings.computeThroughput ?? round((await measureCompute(span)).stepsPerSecond);
    this.measured = { compute, network: this.networkThroughput, effective: Math.min(compute, this.networkThroughput) };
    this.log(`throughput: compute ${compute} steps/s, network ${this.networkThroughput} tok/s (estimate)`);

    const service = new BlockService(span, {
      maxBatch: settings.maxBatch,
      batchWindowMs: settings.batchWindowMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      maxSessionMs: settings.maxSessionMs,
      maxFrameBytes: settings.maxFrameBytes,
      maxSessionsPerStream: settings.maxSessionsPerStream,
      maxForwardTokens: settings.maxForwardTokens,
      quotas: {
        ...(settings.maxSessionsPerPeer !== undefined ? { maxSessionsPerPeer: settings.maxSessionsPerPeer } : {}),
        ...(settings.maxStreamsPerPeer !== undefined ? { maxStreamsPerPeer: settings.maxStreamsPerPeer } : {}),
        ...(settings.peerCacheShare !== undefined ? { peerCacheShare: settings.peerCacheShare } : {}),
        ...(settings.maxPeerBytesInFlight !== undefined ? { maxPeerBytesInFlight: settings.maxPeerBytesInFlight } : {}),
        ...(settings.ipQuotaMultiplier !== undefined ? { ipMultiplier: settings.ipQuotaMultiplier } : {}),
      },
      slowSessionGraceMs: settings.slowSessionGraceMs,
      minSessionRate: settings.minSessionRate,
      dialer: blockDialer(this.node.libp2p, this.node.lanes),
      logger: this.logger,
      attester: new StepAttester(this.node.privateKey, target),
    });
    service.addEventListener('session:open', (event) => this.safeDispatchEvent('session:open', { detail: event.detail }));
    service.addEventListener('session:close', (event) => this.safeDispatchEvent('session:close', { detail: event.detail }));
    service.addEventListener('load', () => {
      if (!this.stopped && this.blockServiceNow === service) announcer.load(service);
    });
    this.currentSpan = span;
    this.currentRange = target;
    this.blockServiceNow = service;
  }

  private async goOnline(): Promise<void> {
    await this.announcer!.online(this.range, { compute: this.measured.compute, network: this.networkThroughput }, this.service.cacheTokensLeft());
  }

  private refuse(stream: Stream): void {
    stream.abort(new ShuttingDownError(this.moving ? 'the server is moving to another span' : 'the server is not serving'));
  }

  /** Stops answering the block protocol and closes the registry if we created it. */
  private async release(handled: boolean): Promise<void> {
    if (handled) {
      this.node.lanes?.unhandle(BLOCK_PROTOCOL);
      await this.node.libp2p.unhandle(BLOCK_PROTOCOL).catch(() => {});
    }
    if (!this.components.registry) await this.registryNow?.close().catch(() => {});
  }
}
