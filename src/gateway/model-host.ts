/**
 * One model the gateway serves: a RemoteModel (embeddings, LM head and tokenizer here; blocks on the swarm) plus a
 * live view of its servers, refreshed in the background. The gateway starts and answers while servers are missing
 * ("unavailable", HTTP 503 for this model) and picks the model up as soon as its blocks are covered.
 *
 * A generation runs on a whole-model server (one hop; the server samples) or through a routed chain of block
 * servers (the client samples), whichever the servers' announced speed and measured round trips say is faster.
 */
import { TypedEventEmitter } from 'main-event';
import { BanList } from '../client/bans.js';
import { formatBlocks, NoRouteError } from '../client/errors.js';
import { RemoteModel, type RemoteModelOptions } from '../client/remote-model.js';
import { verifiedEthAddresses } from '../client/eth-address.js';
import { offersWholeModelGeneration } from '../client/whole-model.js';
import { planRoute, usableServers } from '../client/route-planner.js';
import { generate, type GenerationStream, type PromptOptions } from '../inference/generate.js';
import type { ServerUsage } from '../inference/language-model.js';
import type { ModelConfig, Tokenizer } from '../model/types.js';
import type { SwarmNode } from '../swarm/node.js';
import type { ServerRecord } from '../swarm/records/schema.js';
import type { Registry } from '../swarm/registry/index.js';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import { DEFAULT_MODEL_REFRESH_MS, DEFAULT_SPOT_CHECK_RATE } from './defaults.js';
import { ModelUnavailableError } from './errors.js';

export interface ModelHostSettings {
  /** The public name clients use (`model` in requests). */
  readonly name: string;
  /** RemoteModel settings: the model file, modelId, threads, timeouts… (bootstrap comes from the shared node). */
  readonly model: Omit<RemoteModelOptions, 'bootstrap' | 'waitForCoverage'>;
  /** How often the servers are looked up again (ms). */
  readonly refreshMs?: number;
}

export interface ModelHostComponents {
  readonly node: SwarmNode;
  readonly registry: Registry;
  readonly bans?: BanList;
  readonly logger?: ComponentLogger;
}

/** A server of the model, as the dashboard and /models show it. */
export interface ServerView {
  readonly peerId: string;
  readonly name: string | null;
  readonly blocks: { start: number; end: number };
  readonly state: string;
  readonly version: string;
  readonly engine: string | null;
  readonly quantization: string;
  /** Announced decode throughput (tokens/s through its span). */
  readonly throughput: number;
  readonly activeSessions: number;
  readonly cacheTokensLeft: number;
  readonly location: string | null;
  readonly accelerator: string;
  /** The server's Ethereum address, only when its record's binding verifies. */
  readonly ethAddress: string | null;
  readonly rttMs: number | null;
}

export type ModelStatus = 'starting' | 'available' | 'unavailable';

export interface ModelView {
  readonly name: string;
  /** The swarm's model id (a hash of the weights), what servers announce. */
  readonly modelId: string | null;
  readonly status: ModelStatus;
  /** Why the model is not available, in words. */
  readonly reason: string | null;
  readonly numBlocks: number;
  readonly contextLength: number;
  /** Online servers per block (0 = uncovered). */
  readonly coverage: number[];
  readonly servers: ServerView[];
  readonly updatedAt: number;
}

export interface ModelHostEvents {
  /** The model's view changed (status, servers or coverage). */
  change: CustomEvent<ModelView>;
}

/** A started generation: its events, and who served which blocks so far (live, for the ledger). */
export interface HostedGeneration {
  readonly stream: GenerationStream;
  /** 'whole-model' when one server runs the whole generation. */
  readonly path: 'routed' | 'whole-model';
  usage(): ServerUsage[];
  /** The Ethereum address a server announced and bound to its peer id (verified), if any. */
  ethAddressOf(peerId: string): string | null;
}

export class ModelHost extends TypedEventEmitter<ModelHostEvents> {
  readonly name: string;
  readonly model: RemoteModel;
  private view: ModelView;
  private records: ServerRecord[] = [];
  private timer?: ReturnType<typeof setTimeout>;
  private refreshing?: Promise<void>;
  private closed = false;
  private loaded = false;
  private readonly log: Logger;

  constructor(
    private readonly components: ModelHostComponents,
    private readonly settings: ModelHostSettings,
  ) {
    super();
    this.name = settings.name;
    this.log = (components.logger ?? silentLogger).forComponent('corolla:gateway:model');
    // a gateway spot-checks its servers unless told otherwise (spotCheck.rate 0 disables)
    const spotCheck = { ...settings.model.spotCheck, rate: settings.model.spotCheck?.rate ?? DEFAULT_SPOT_CHECK_RATE };
    this.model = new RemoteModel({ ...settings.model, spotCheck, waitForCoverage: false }, { node: components.node, registry: components.registry, bans: components.bans ?? new BanList(), logger: components.logger });
    this.view = { name: this.name, modelId: null, status: 'starting', reason: 'loading the model', numBlocks: 0, contextLength: 0, coverage: [], servers: [], updatedAt: Date.now() };
  }

  /** Loads the embeddings, LM head and tokenizer, then looks the servers up (and keeps doing so). */
  async start(): Promise<void> {
    await this.model.start();
    this.loaded = true;
    await this.refresh();
    this.schedule();
  }

  /** Throws ModelUnavailableError while the model file is still loading (tokenizer, embeddings, LM head). */
  async ready(): Promise<void> {
    if (!this.loaded) throw new ModelUnavailableError(this.name, 'the gateway is still loading it');
  }

  get tokenizer(): Tokenizer {
    return this.model.tokenizer;
  }
  get config(): ModelConfig {
    return this.model.config;
  }
  get status(): ModelStatus {
    return this.view.status;
  }

  snapshot(): ModelView {
    return this.view;
  }

  /** Looks the servers up now and recomputes the view. Concurrent callers share one refresh. */
  refresh(): Promise<void> {
    this.refreshing ??= this.computeView().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.schedule());
    }, this.settings.refreshMs ?? DEFAULT_MODEL_REFRESH_MS);
    this.timer.unref?.();
  }

  private async computeView(): Promise<void> {
    if (!this.loaded) return;
    const model = this.model;
    const numBlocks = model.config.numLayers;
    let records: ServerRecord[];
    try {
      records = (await model.directory.refresh()).map(({ record }) => record);
    } catch (error) {
      this.log.error('lookup of %s failed: %s', this.name, (error as Error).message);
      return;
    }
    const online = usableServers(records, { numBlocks, maxLength: 1 }).servers;
    await model.directory.measure(online.map((r) => r.peerId)).catch(() => {});
    const rtt = model.directory.rttMs();
    const coverage = new Array<number>(numBlocks).fill(0);
    for (const r of online) for (let b = r.span.start; b < Math.min(r.span.end, numBlocks); b++) coverage[b]!++;
    let status: ModelStatus = 'available';
    let reason: string | null = null;
    try {
      planRoute(records, { numBlocks, maxLength: 1, banned: model.bans.predicate });
    } catch (error) {
      if (!(error instanceof NoRouteError)) throw error;
      status = 'unavailable';
      const missing = coverage.flatMap((n, b) => (n === 0 ? [b] : []));
      reason = missing.length > 0 ? `no server serves block${missing.length > 1 ? 's' : ''} ${formatBlocks(missing)}` : error.message;
    }
    // shown only when bound to the peer id by the Ethereum key, as payment requires: a bare ethAddress is anyone's claim
    const ethAddresses = await verifiedEthAddresses(records);
    this.records = records;
    const previous = this.view;
    this.view = {
      name: this.name,
      modelId: model.modelId,
      status,
      reason,
      numBlocks,
      contextLength: model.config.maxPositionEmbeddings,
      coverage,
      servers: records.map((r) => serverView(r, rtt.get(r.peerId), ethAddresses.get(r.peerId) ?? null)).sort((a, b) => a.blocks.start - b.blocks.start || (a.peerId < b.peerId ? -1 : 1)),
      updatedAt: Date.now(),
    };
    if (previous.status !== status) this.log('%s is %s%s', this.name, status, reason ? `: ${reason}` : '');
    this.safeDispatchEvent('change', { detail: this.view });
  }

  /**
   * Starts a generation of `prompt` (token ids). Fails with ModelUnavailableError when the blocks are not covered.
   * The session (or the whole-model server's generation) is closed when the stream ends or is returned early.
   */
  async generate(prompt: readonly number[], options: PromptOptions): Promise<HostedGeneration> {
    if (this.view.status !== 'available') {
      await this.refresh();
      if ((this.view as ModelView).status !== 'available') throw new ModelUnavailableError(this.name, this.view.reason ?? 'no servers yet');
    }
    // only addresses bound to their peer id by the Ethereum key: an unbound ethAddress is anyone's claim
    const ethAddresses = await verifiedEthAddresses(this.records);
    const ethAddressOf = (peerId: string) => ethAddresses.get(peerId) ?? null;
    const maxLength = prompt.length + options.maxTokens;
    if (await this.wholeModelIsFaster(maxLength)) {
      const stream = this.model.generateOnWholeModelServer(prompt, options);
      return { stream, path: 'whole-model', usage: () => stream.stats.servers ?? [], ethAddressOf };
    }
    const session = await this.model.openSession(maxLength, { signal: options.signal });
    const inner = generate(session, this.model.tokenizer, prompt, options);
    async function* run() {
      try {
        yield* inner;
      } finally {
        await session.close().catch(() => {});
      }
    }
    const stream = Object.assign(run(), { stats: inner.stats });
    return { stream, path: 'routed', usage: () => session.usage(), ethAddressOf };
  }

  /** One hop on the fastest whole-model server beats the routed chain when its estimated step time is lower. */
  private async wholeModelIsFaster(maxLength: number): Promise<boolean> {
    const numBlocks = this.view.numBlocks;
    const banned = this.model.bans.predicate;
    const { servers } = usableServers(this.records, { numBlocks, maxLength, banned });
    const spanning = servers.filter((s) => s.span.start === 0 && s.span.end === numBlocks);
    const offers = await Promise.all(spanning.map((s) => offersWholeModelGeneration(this.model.node, s.peerId)));
    const whole = spanning.filter((_, i) => offers[i]);
    if (whole.length === 0) return false;
    const rtt = this.model.directory.rttMs();
    const wholeMs = Math.min(...whole.map((s) => 1000 / Math.max(s.throughput.effective, 1e-3) + (rtt.get(s.peerId) ?? 0)));
    try {
      const route = planRoute(this.records, { numBlocks, maxLength, banned, rttMs: rtt });
      // a routed step also pays the LM head here; the whole-model server pays its own inside its throughput
      return wholeMs <= route.costMs || route.hops.length === 1;
    } catch {
      return true;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.refreshing?.catch(() => {});
    await this.model.close();
  }
}

function serverView(r: ServerRecord, rttMs: number | undefined, ethAddress: string | null): ServerView {
  return {
    peerId: r.peerId,
    name: r.publicName ?? null,
    blocks: { start: r.span.start, end: r.span.end },
    state: r.state,
    version: r.softwareVersion,
    engine: r.engine ?? null,
    quantization: r.quantization,
    throughput: r.throughput.effective,
    activeSessions: r.load.activeSessions,
    cacheTokensLeft: r.cacheTokensLeft,
    location: r.location ?? null,
    accelerator: r.accelerator.name,
    ethAddress,
    rttMs: rttMs ?? null,
  };
}
