/**
 * A model served by a swarm, seen from a client: the embeddings and the LM head run here (read lazily from the
 * local model file: token_embd, output_norm, output), the blocks run on remote servers through a
 * SwarmInferenceSession. This is the library API:
 *
 *   const model = await RemoteModel.open({ model: 'stories260K.gguf', bootstrap: ['/ip4/…/p2p/…'] });
 *   for await (const { text } of model.generate('Once upon a time', { maxTokens: 64, temperature: 0 })) write(text);
 *   await model.close();
 *
 * RemoteModel is a LanguageModel: `openSession(maxLength)` gives ids → logits, so the one generation loop
 * (inference/generate.ts) and chat (inference/chat.ts) run unchanged over the swarm. A whole-model server is just a
 * one-hop route here; `generateOnWholeModelServer` instead lets such a server run the whole generation (its own
 * embeddings, LM head and sampler). Progress and the route's changes are typed events ('waiting', 'route', 'failure',
 * 'recovery'); to see 'waiting', construct the model, listen, then `start()` it.
 */
import { TypedEventEmitter } from 'main-event';
import { loadEmbeddings, type EmbeddingTable } from '../engine/embeddings.js';
import { ContextLengthError } from '../engine/errors.js';
import { loadLmHead } from '../engine/lm-head.js';
import type { LmHead } from '../engine/types.js';
import { generateFrom, generateText, promptIds, type GenerationStream, type PromptOptions } from '../inference/generate.js';
import type { InferenceSession, LanguageModel, OpenSessionOptions, ServerUsage, StepOptions } from '../inference/language-model.js';
import { openModel, type LoadedModelSource, type OpenModelOptions } from '../model/load.js';
import type { OnProgress } from '../util/progress.js';
import { InvalidTokenizerError } from '../model/tokenizer/errors.js';
import { createTokenizer } from '../model/tokenizer/index.js';
import type { ModelConfig, Tokenizer } from '../model/types.js';
import { modelIdOf } from '../swarm/model-id.js';
import { createSwarmNode, type SwarmNode, type SwarmTransport } from '../swarm/node.js';
import { createRegistry, type Registry, type RegistryOptions } from '../swarm/registry/index.js';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import type { Codec } from '../wire/messages.js';
import { BanList } from './bans.js';
import { SwarmDirectory, type DirectoryOptions } from './directory.js';
import { formatBlocks, ModelNotStartedError, SwarmUnavailableError, type RemoteSpanError } from './errors.js';
import { SwarmInferenceSession, type HopInfo, type RecoveryInfo, type SessionEvent } from './inference-session.js';
import type { CostModel } from './route-planner.js';
import { SpotChecker, type SpotCheckEvents, type SpotCheckSettings } from './spot-check.js';
import { rankWholeModelServers, runWholeModelGeneration, type WholeModelGenerateOptions } from './whole-model.js';

/** Settings of a RemoteModel. */
export interface RemoteModelOptions {
  /** The model file (GGUF, llama2.c .bin, HF directory or Hub id). Only the embeddings and the LM head are read. */
  readonly model: string;
  readonly tokenizerPath?: string;
  /** Multiaddrs (with /p2p/) of swarm peers; needed unless a node is given. */
  readonly bootstrap?: readonly string[];
  readonly registryOptions?: RegistryOptions;
  /** Transport of a node created here (default 'tcp'). */
  readonly transport?: SwarmTransport;
  /** Swarm key of a private swarm (for a node created here). */
  readonly psk?: Uint8Array;
  /** The model id servers announce; computed from the weights (modelIdOf) when omitted. */
  readonly modelId?: string;
  /** onnxruntime threads for the LM head. */
  readonly threads?: number;
  /** Hidden-state codec on the wire (default 'f32': lossless, identical to local generation). */
  readonly codec?: Codec;
  readonly stepTimeoutMs?: number;
  readonly openTimeoutMs?: number;
  /** Recovery attempts per step. Default 5. */
  readonly maxRetries?: number;
  /** Time budget for recovering one step (ms). Default 60 000. */
  readonly failoverDeadlineMs?: number;
  readonly replayWindow?: number;
  /** Servers push each step on to the next hop (one pass through the chain per token; default true). */
  readonly forwarding?: boolean;
  /** Records the first recovery attempt plans from (see SwarmSessionOptions.failoverRecords). */
  readonly failoverRecords?: 'cached-first' | 'fresh';
  readonly cost?: CostModel;
  /** How long start() waits for servers covering every block (ms). Default 60 000. */
  readonly coverageTimeoutMs?: number;
  /**
   * Whether start() waits for servers covering every block (default true). A gateway starts without waiting and
   * answers "unavailable" until coverage appears; sessions opened before then fail with SwarmUnavailableError.
   */
  readonly waitForCoverage?: boolean;
  readonly directory?: DirectoryOptions;
  /** Hub endpoint, token and cache root, for a Hub model id. */
  readonly hub?: OpenModelOptions['hub'];
  /** Progress of a Hub download and of fingerprinting the weights. */
  readonly onProgress?: OnProgress;
  /**
   * Spot-checks (client/spot-check.ts): the fraction of (session, hop) pairs whose work is re-run on another server
   * after the session, 0..1 (default 0: none; the gateway defaults to DEFAULT_SPOT_CHECK_RATE), and how.
   */
  readonly spotCheck?: Omit<SpotCheckSettings, 'rate'> & { readonly rate?: number };
}

/** What a RemoteModel uses rather than creates. */
export interface RemoteModelComponents {
  /** Use this libp2p node instead of creating one (tests, gateways). It is not stopped by close(). */
  readonly node?: SwarmNode;
  /** Use this registry instead of creating one on the node. It is not closed by close(). */
  readonly registry?: Registry;
  /** Ban list shared with other models (default: a private one; 15 s, doubling). */
  readonly bans?: BanList;
  readonly logger?: ComponentLogger;
}

/** While start() waits for servers covering every block: how far the search got. */
export interface WaitingInfo {
  readonly modelId: string;
  readonly elapsedMs: number;
  readonly servers: number;
  /** What is still missing, in words. */
  readonly missing: string;
}

export interface FailureInfo {
  readonly peerId: string;
  readonly error: RemoteSpanError;
  /** How long the server is banned for (ms). */
  readonly banMs: number;
}

export interface RemoteModelEvents {
  /** A session's route, when it opens and after every recovery. */
  route: CustomEvent<readonly HopInfo[]>;
  /** A hop failed; its server is banned. */
  failure: CustomEvent<FailureInfo>;
  /** A failed hop's blocks were recovered on replacement servers. */
  recovery: CustomEvent<RecoveryInfo>;
  /** start() is still waiting for servers covering every block (every ~2 s). */
  waiting: CustomEvent<WaitingInfo>;
  /** Spot-check outcomes (client/spot-check.ts): a failed one carries the evidence for the oracle. */
  'spot-check:passed': SpotCheckEvents['spot-check:passed'];
  'spot-check:failed': SpotCheckEvents['spot-check:failed'];
  'spot-check:disputed': SpotCheckEvents['spot-check:disputed'];
  'spot-check:skipped': SpotCheckEvents['spot-check:skipped'];
}


/** ids → logits over a swarm: embed here → blocks remotely → logits here. */
export class RemoteInferenceSession implements InferenceSession {
  constructor(
    readonly swarm: SwarmInferenceSession,
    private readonly embeddings: EmbeddingTable,
    private readonly lmHead: LmHead,
  ) {}

  async next(ids: readonly number[], options: StepOptions = {}): Promise<Float32Array> {
    if (ids.length === 0) throw new RangeError('next() needs at least one token id');
    const hidden = await this.swarm.step(this.embeddings.embed(ids), ids.length, options);
    return this.lmHead.logits(hidden);
  }

  async nextRows(ids: readonly number[], options: StepOptions = {}): Promise<Float32Array[]> {
    if (ids.length === 0) throw new RangeError('nextRows() needs at least one token id');
    const hidden = await this.swarm.step(this.embeddings.embed(ids), ids.length, options);
    const width = hidden.length / ids.length;
    return this.lmHead.logitsBatch(ids.map((_, i) => hidden.subarray(i * width, (i + 1) * width)));
  }

  rewind(position: number): Promise<void> {
    return this.swarm.rewind(position);
  }

  usage(): ServerUsage[] {
    return this.swarm.usage();
  }

  close(): Promise<void> {
    return this.swarm.close();
  }
}

interface Started {
  readonly modelId: string;
  readonly tokenizer: Tokenizer;
  readonly node: SwarmNode;
  readonly registry: Registry;
  readonly directory: SwarmDirectory;
  readonly embeddings: EmbeddingTable;
  readonly lmHead: LmHead;
  readonly source: LoadedModelSource;
}

export class RemoteModel extends TypedEventEmitter<RemoteModelEvents> implements LanguageModel {
  readonly bans: BanList;
  private readonly log: Logger;
  private started?: Started;
  private closed = false;
  private checker?: SpotChecker;

  constructor(
    private readonly options: RemoteModelOptions,
    private readonly components: RemoteModelComponents = {},
  ) {
    super();
    this.bans = components.bans ?? new BanList();
    this.log = (components.logger ?? silentLogger).forComponent('corolla:client:model');
  }

  /** Creates and starts a RemoteModel (see start()). */
  static async open(options: RemoteModelOptions, components: RemoteModelComponents = {}): Promise<RemoteModel> {
    const model = new RemoteModel(options, components);
    await model.start();
    return model;
  }

  /**
   * Opens the local model file for tokenizer, embeddings and LM head, joins the swarm, and waits (emitting 'waiting')
   * until servers cover every block. Throws SwarmUnavailableError when they do not within the timeout.
   */
  async start(): Promise<void> {
    if (this.started) return;
    const { options, components } = this;
    if (!components.node && (!options.bootstrap || options.bootstrap.length === 0)) {
      throw new SwarmUnavailableError('no swarm to join: give bootstrap addresses (or a node)', { failures: [], elapsedMs: 0 });
    }
    const source = await openModel(options.model, { tokenizerPath: options.tokenizerPath, ...(options.hub ? { hub: options.hub } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    let node: SwarmNode | undefined;
    let registry: Registry | undefined;
    try {
      if (!source.tokenizer) throw new InvalidTokenizerError(options.model, 'the model carries no tokenizer; pass a tokenizer path');
      const tokenizer = createTokenizer(source.tokenizer);
      const modelId = options.modelId ?? (await modelIdOf(source, { ...(options.hub?.cacheRoot ? { cacheRoot: options.hub.cacheRoot } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) }));
      const embeddings = loadEmbeddings(source);
      const lmHead = await loadLmHead(source, { threads: options.threads });
      node = components.node ?? (await createSwarmNode({ bootstrap: [...(options.bootstrap ?? [])], transport: options.transport, psk: options.psk, dhtClientMode: true, ...(components.logger ? { logger: components.logger } : {}) }));
      registry = components.registry ?? (await createRegistry(node, { ...options.registryOptions, ...(components.logger ? { logger: components.logger } : {}) }));
      // DHT lookups find nobody until the routing table holds a peer (identify runs just after the bootstrap dial).
      if (!components.node) await node.waitForPeers(1, Math.min(5_000, options.coverageTimeoutMs ?? 60_000)).catch(() => {});
      const numBlocks = source.config.numLayers;
      const directory = new SwarmDirectory({ node, registry, logger: components.logger }, modelId, numBlocks, options.directory);
      if (options.waitForCoverage === false) {
        this.started = { modelId, tokenizer, node, registry, directory, embeddings, lmHead, source };
        return;
      }
      let lastSaid = 0;
      const route = await directory.waitForCoverage({
        timeoutMs: options.coverageTimeoutMs ?? 60_000,
        cost: options.cost,
        banned: this.bans.predicate,
        onProgress: ({ elapsedMs, servers, error }) => {
          if (elapsedMs - lastSaid < 2_000 && lastSaid !== 0) return;
          lastSaid = Math.max(1, elapsedMs);
          const missing = error.uncoveredBlocks.length > 0 ? `blocks ${formatBlocks(error.uncoveredBlocks)} not served yet` : `spans do not chain past block ${error.reachedBlock}`;
          this.log('waiting for servers of %s: %d found, %s', modelId, servers, missing);
          this.safeDispatchEvent('waiting', { detail: { modelId, elapsedMs, servers, missing } });
        },
      });
      this.log('route: %s', route.hops.map((hop) => `[${hop.start},${hop.end})@${hop.peerId.slice(-8)}`).join(' → '));
      this.started = { modelId, tokenizer, node, registry, directory, embeddings, lmHead, source };
    } catch (error) {
      if (registry && !components.registry) await registry.close().catch(() => {});
      if (node && !components.node) await node.stop().catch(() => {});
      source.close();
      throw error;
    }
  }

  private get state(): Started {
    if (!this.started) throw new ModelNotStartedError();
    return this.started;
  }

  get modelId(): string {
    return this.state.modelId;
  }
  get config(): ModelConfig {
    return this.state.source.config;
  }
  get tokenizer(): Tokenizer {
    return this.state.tokenizer;
  }
  get node(): SwarmNode {
    return this.state.node;
  }
  get registry(): Registry {
    return this.state.registry;
  }
  get directory(): SwarmDirectory {
    return this.state.directory;
  }

  /** Opens a multi-hop session for up to `maxLength` tokens (prompt + generated). */
  async openSession(maxLength: number, options: OpenSessionOptions = {}): Promise<RemoteInferenceSession> {
    const swarm = await this.openSwarmSession(maxLength, options);
    return new RemoteInferenceSession(swarm, this.state.embeddings, this.state.lmHead);
  }

  /** A session at the hidden-state level (for callers that run their own embeddings and LM head). */
  openSwarmSession(maxLength: number, options: OpenSessionOptions = {}): Promise<SwarmInferenceSession> {
    // servers refuse sessions beyond the context; refuse here rather than blame them for it
    if (maxLength > this.config.maxPositionEmbeddings) return Promise.reject(new ContextLengthError(maxLength, this.config.maxPositionEmbeddings));
    const o = this.options;
    return SwarmInferenceSession.open({
      node: this.node.libp2p,
      lanes: this.node.lanes,
      source: this.directory,
      numBlocks: this.config.numLayers,
      hiddenSize: this.config.hiddenSize,
      maxLength,
      bans: this.bans,
      measurements: this.directory.measurements,
      codec: o.codec,
      stepTimeoutMs: o.stepTimeoutMs,
      openTimeoutMs: o.openTimeoutMs,
      maxRetries: o.maxRetries,
      failoverDeadlineMs: o.failoverDeadlineMs,
      replayWindow: o.replayWindow,
      failoverRecords: o.failoverRecords,
      forwarding: o.forwarding,
      cost: o.cost,
      signal: options.signal,
      logger: this.components.logger,
      onEvent: (event) => this.relay(event),
      ...(this.spotChecker ? { spotChecker: this.spotChecker } : {}),
    });
  }

  /** The spot-checker of this model's sessions, when spotCheck.rate > 0 (its `stats` say what it found). */
  get spotChecker(): SpotChecker | undefined {
    const settings = this.options.spotCheck;
    if (this.checker || !settings?.rate || !this.started) return this.checker;
    const o = this.options;
    const checker = new SpotChecker(
      { stepTimeoutMs: o.stepTimeoutMs, openTimeoutMs: o.openTimeoutMs, replayWindow: o.replayWindow, ...settings, rate: settings.rate },
      { node: this.node.libp2p, lanes: this.node.lanes, source: this.directory, bans: this.bans, logger: this.components.logger },
    );
    for (const type of ['spot-check:passed', 'spot-check:failed', 'spot-check:disputed', 'spot-check:skipped'] as const) {
      checker.addEventListener(type, (event) => this.safeDispatchEvent(type, { detail: event.detail as never }));
    }
    return (this.checker = checker);
  }

  private relay(event: SessionEvent): void {
    if (event.type === 'route') this.safeDispatchEvent('route', { detail: event.hops });
    else if (event.type === 'failure') this.safeDispatchEvent('failure', { detail: { peerId: event.peerId, error: event.error, banMs: event.banMs } });
    else if (event.type === 'recovered') this.safeDispatchEvent('recovery', { detail: event.recovery });
  }

  /**
   * Streams a generation through the swarm: one event per token (`text` is the newly completed text). `stats` is
   * complete once iteration ends, with `servers` naming who computed what. The session is sized prompt + maxTokens
   * and closed at the end.
   */
  generate(prompt: string | readonly number[], options: PromptOptions): GenerationStream {
    return generateFrom(this, prompt, options);
  }

  /** The whole generated text of `prompt`. */
  text(prompt: string | readonly number[], options: PromptOptions): Promise<string> {
    return generateText(this, prompt, options);
  }

  /** Whole-model servers that could run a generation of `maxLength` tokens, best first (heartbeat load, speed). */
  wholeModelServers(maxLength = 1) {
    return rankWholeModelServers(this.directory, this.registry, { numBlocks: this.config.numLayers, maxLength, banned: this.bans.predicate });
  }

  /**
   * Runs the whole generation on one whole-model server (/corolla/generate/1.0.0): the server embeds, samples and
   * streams tokens back, so no hidden state or logits cross the network. Servers are tried best first (lowest load,
   * then fastest); a server that fails before producing a token is banned and the next one tried.
   */
  generateOnWholeModelServer(prompt: string | readonly number[], options: WholeModelGenerateOptions): GenerationStream {
    return runWholeModelGeneration(this, promptIds(this.tokenizer, prompt, options.addBos), options);
  }

  async close(): Promise<void> {
    if (this.closed || !this.started) return;
    this.closed = true;
    const { registry, node, source } = this.started;
    // checks already selected run to their end (each is bounded by the step and open timeouts)
    await this.checker?.drain();
    if (!this.components.registry) await registry.close().catch(() => {});
    if (!this.components.node) await node.stop().catch(() => {});
    source.close();
  }
}
