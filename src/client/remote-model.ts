/**
 * A model served by a swarm, seen from a client: the embeddings and the LM head run here (read lazily from the
 * local model file: token_embd, output_norm, output), the blocks run on remote servers through a
 * SwarmInferenceSession. This is the library API:
 *
 *   const model = await RemoteModel.open({ model: 'stories260K.gguf', bootstrap: ['/ip4/…/p2p/…'] });
 *   for await (const { text } of model.generate('Once upon a time', { maxTokens: 64, temperature: 0 })) write(text);
 *   await model.close();
 *
 * `openSession(maxLength)` gives the engine's InferenceSession (ids → logits), so the shared generation loop
 * (engine/generate.ts) runs unchanged over the swarm. A whole-model server is just a one-hop route here;
 * `generateOnWholeModelServer` instead lets such a server run the whole generation (its own head and sampler).
 */
import { generate, type GenerateOptions, type GenerationEvent, type GenerationStats, type InferenceSession } from '../engine/generate.js';
import { loadHead, type EmbeddingHead } from '../engine/head.js';
import { loadTail } from '../engine/tail.js';
import type { ModelTail } from '../engine/types.js';
import { openModel, type LoadedModelSource } from '../model/load.js';
import { InvalidTokenizerError } from '../model/tokenizer/errors.js';
import { createTokenizer } from '../model/tokenizer/index.js';
import type { ModelConfig, Tokenizer } from '../model/types.js';
import { modelIdOf } from '../swarm/model-id.js';
import { createSwarmNode, type SwarmNode, type SwarmTransport } from '../swarm/node.js';
import { createRegistry, type Registry, type RegistryOptions } from '../swarm/registry/index.js';
import type { Codec } from '../wire/messages.js';
import { BanList } from './bans.js';
import { SwarmDirectory, type DirectoryOptions } from './directory.js';
import { formatBlocks, SwarmUnavailableError } from './errors.js';
import { SwarmInferenceSession, type SessionEvent } from './inference-session.js';
import type { CostModel } from './route-planner.js';
import { rankWholeModelServers, runWholeModelGeneration, type WholeModelGenerateOptions } from './whole-model.js';

export interface RemoteModelOptions {
  /** The model file (GGUF, llama2.c .bin, HF directory or Hub id). Only the embeddings and the head are read. */
  readonly model: string;
  readonly tokenizerPath?: string;
  /** Multiaddrs (with /p2p/) of swarm peers; needed unless `node` is given. */
  readonly bootstrap?: readonly string[];
  /** Use this libp2p node instead of creating one (tests, gateways). It is not stopped by close(). */
  readonly node?: SwarmNode;
  /** Use this registry instead of creating one on the node. It is not closed by close(). */
  readonly registry?: Registry;
  readonly registryOptions?: RegistryOptions;
  /** Transport of a node created here (default 'tcp'). */
  readonly transport?: SwarmTransport;
  /** Swarm key of a private swarm. */
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
  /** Records the first recovery attempt plans from (see SwarmSessionOptions.failoverRecords). */
  readonly failoverRecords?: 'cached-first' | 'fresh';
  readonly cost?: CostModel;
  /** How long open() waits for servers covering every block (ms). Default 60 000. */
  readonly coverageTimeoutMs?: number;
  readonly directory?: DirectoryOptions;
  /** Ban lengths (default 15 s, doubling). */
  readonly bans?: BanList;
  /** No progress lines on stderr. */
  readonly quiet?: boolean;
  readonly log?: (line: string) => void;
  readonly onEvent?: (event: SessionEvent) => void;
}

export interface RemoteGenerateOptions extends GenerateOptions {
  /** Encode a text prompt with BOS (default: the tokenizer's setting). */
  readonly addBos?: boolean;
}

export type GenerationStream = AsyncGenerator<GenerationEvent> & { readonly stats: GenerationStats };

/** The engine's InferenceSession over a swarm: embed here → blocks remotely → logits here. */
export class RemoteInferenceSession implements InferenceSession {
  constructor(
    readonly swarm: SwarmInferenceSession,
    private readonly head: EmbeddingHead,
    private readonly tail: ModelTail,
  ) {}

  async next(ids: readonly number[]): Promise<Float32Array> {
    if (ids.length === 0) throw new RangeError('next() needs at least one token id');
    const hidden = await this.swarm.step(this.head.embed(ids), ids.length);
    return this.tail.logits(hidden);
  }

  close(): Promise<void> {
    return this.swarm.close();
  }
}

export class RemoteModel {
  readonly bans: BanList;
  private closed = false;

  private constructor(
    readonly modelId: string,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    readonly node: SwarmNode,
    readonly registry: Registry,
    readonly directory: SwarmDirectory,
    private readonly head: EmbeddingHead,
    private readonly tail: ModelTail,
    private readonly source: LoadedModelSource,
    private readonly owned: { node: boolean; registry: boolean },
    private readonly options: RemoteModelOptions,
  ) {
    this.bans = options.bans ?? new BanList();
  }

  /**
   * Opens the local model file for tokenizer, embeddings and head, joins the swarm, and waits (with progress on
   * stderr) until servers cover every block. Throws SwarmUnavailableError when they do not within the timeout.
   */
  static async open(options: RemoteModelOptions): Promise<RemoteModel> {
    const log = options.log ?? (() => {});
    const say = (line: string) => {
      if (!options.quiet && process.env.COROLLA_QUIET !== '1') process.stderr.write(`${line}\n`);
      log(line);
    };
    if (!options.node && (!options.bootstrap || options.bootstrap.length === 0)) {
      throw new SwarmUnavailableError('no swarm to join: give bootstrap addresses (or a node)', { failures: [], elapsedMs: 0 });
    }
    const source = await openModel(options.model, { tokenizerPath: options.tokenizerPath });
    let node: SwarmNode | undefined;
    let registry: Registry | undefined;
    try {
      if (!source.tokenizer) throw new InvalidTokenizerError(options.model, 'the model carries no tokenizer; pass a tokenizer path');
      const tokenizer = createTokenizer(source.tokenizer);
      const modelId = options.modelId ?? (await modelIdOf(source, { quiet: options.quiet }));
      const head = loadHead(source);
      const tail = await loadTail(source, { threads: options.threads });
      node = options.node ?? (await createSwarmNode({ bootstrap: [...(options.bootstrap ?? [])], transport: options.transport, psk: options.psk, dhtClientMode: true }));
      registry = options.registry ?? (await createRegistry(node, options.registryOptions));
      // DHT lookups find nobody until the routing table holds a peer (identify runs just after the bootstrap dial).
      if (!options.node) await node.waitForPeers(1, Math.min(5_000, options.coverageTimeoutMs ?? 60_000)).catch(() => {});
      const numBlocks = source.config.numLayers;
      const directory = new SwarmDirectory(node, registry, modelId, numBlocks, { log, ...options.directory });
      let lastSaid = 0;
      const route = await directory.waitForCoverage({
        timeoutMs: options.coverageTimeoutMs ?? 60_000,
        cost: options.cost,
        banned: options.bans?.predicate,
        onProgress: ({ elapsedMs, servers, error }) => {
          if (elapsedMs - lastSaid < 2_000 && lastSaid !== 0) return;
          lastSaid = Math.max(1, elapsedMs);
          const missing = error.uncoveredBlocks.length > 0 ? `blocks ${formatBlocks(error.uncoveredBlocks)} not served yet` : `spans do not chain past block ${error.reachedBlock}`;
          say(`waiting for servers of ${modelId}: ${servers} found, ${missing} (${Math.round(elapsedMs / 1000)} s)`);
        },
      });
      log(`route: ${route.hops.map((hop) => `[${hop.start},${hop.end})@${hop.peerId.slice(-8)}`).join(' → ')}`);
      return new RemoteModel(modelId, source.config, tokenizer, node, registry, directory, head, tail, source, { node: !options.node, registry: !options.registry }, options);
    } catch (error) {
      if (registry && !options.registry) await registry.close().catch(() => {});
      if (node && !options.node) await node.stop().catch(() => {});
      source.close();
      throw error;
    }
  }

  /** Opens a multi-hop session for up to `maxLength` tokens (prompt + generated). */
  async openSession(maxLength: number, options: { signal?: AbortSignal } = {}): Promise<RemoteInferenceSession> {
    const swarm = await this.openSwarmSession(maxLength, options);
    return new RemoteInferenceSession(swarm, this.head, this.tail);
  }

  /** A session at the hidden-state level (for callers that run their own head/tail). */
  openSwarmSession(maxLength: number, options: { signal?: AbortSignal } = {}): Promise<SwarmInferenceSession> {
    const o = this.options;
    return SwarmInferenceSession.open({
      node: this.node.libp2p,
      source: this.directory,
      numBlocks: this.config.numLayers,
      hiddenSize: this.config.hiddenSize,
      maxLength,
      bans: this.bans,
      codec: o.codec,
      stepTimeoutMs: o.stepTimeoutMs,
      openTimeoutMs: o.openTimeoutMs,
      maxRetries: o.maxRetries,
      failoverDeadlineMs: o.failoverDeadlineMs,
      replayWindow: o.replayWindow,
      failoverRecords: o.failoverRecords,
      cost: o.cost,
      signal: options.signal,
      log: o.log,
      onEvent: o.onEvent,
    });
  }

  /** Token ids of a prompt (BOS alone for an empty prompt). */
  encode(prompt: string | readonly number[], addBos?: boolean): number[] {
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt, addBos === undefined ? undefined : { addBos }) : [...prompt];
    if (ids.length === 0) {
      if (this.tokenizer.special.bos === undefined) throw new RangeError('empty prompt, and this model has no BOS token');
      ids.push(this.tokenizer.special.bos);
    }
    return ids;
  }

  /**
   * Streams a generation through the swarm: one event per token (`text` is the newly completed text). `stats` is
   * complete once iteration ends. The session is sized prompt + maxTokens and closed at the end.
   */
  generate(prompt: string | readonly number[], options: RemoteGenerateOptions): GenerationStream {
    const stats: GenerationStats = { promptTokens: 0, generatedTokens: 0, decodeSteps: 0, prefillMs: 0, decodeMs: 0, finishReason: 'length' };
    const ids = this.encode(prompt, options.addBos);
    const open = () => this.openSession(ids.length + options.maxTokens, { signal: options.signal });
    const tokenizer = this.tokenizer;
    async function* run(): AsyncGenerator<GenerationEvent> {
      const session = await open();
      const inner = generate(session, tokenizer, ids, options);
      try {
        for await (const event of inner) yield event;
      } catch (error) {
        // an abort while a step is in flight ends the generation like an abort between tokens
        if (!options.signal?.aborted) throw error;
        Object.assign(stats, inner.stats);
        stats.finishReason = 'abort';
        return;
      } finally {
        if (stats.finishReason !== 'abort') Object.assign(stats, inner.stats);
        await session.close();
      }
    }
    return Object.assign(run(), { stats });
  }

  /** The whole generated text of `prompt`. */
  async text(prompt: string | readonly number[], options: RemoteGenerateOptions): Promise<string> {
    let text = '';
    for await (const event of this.generate(prompt, options)) text += event.text;
    return text;
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
  generateOnWholeModelServer(prompt: string | readonly number[], options: WholeModelGenerateOptions): AsyncGenerator<GenerationEvent> {
    const ids = this.encode(prompt, options.addBos);
    return runWholeModelGeneration(this, ids, options);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.owned.registry) await this.registry.close().catch(() => {});
    if (this.owned.node) await this.node.stop().catch(() => {});
    this.source.close();
  }
}
