/**
 * A block server: holds blocks [start, end) of one model, serves them over the block protocol, and announces itself
 * on the DHT. Lifecycle:
 *
 *   choose span (fixed, 'all', or the weakest-covered window of N blocks) → announce JOINING → load the span
 *   (progress on stderr) → measure throughput → serve → announce ONLINE → (every rebalanceIntervalMs, for an
 *   auto-chosen span: move when that raises the swarm's minimum per-block throughput by ≥ 33% without opening a
 *   gap) → stop(): announce OFFLINE, close streams, free the engine.
 *
 * With range 'all' the server also loads the head and tail and serves whole-model generation
 * (generate-protocol.ts); its record's span is [0, numBlocks).
 *
 * Moving to another span closes the open sessions (their clients fail over and replay elsewhere): the check only
 * moves when the remaining servers still cover every block, and the new span is loaded after the old one is freed,
 * so memory never holds both.
 */
import os from 'node:os';
import type { Stream } from '@libp2p/interface';
import { loadHead } from '../engine/head.js';
import { loadSpan } from '../engine/span-executor.js';
import { loadTail } from '../engine/tail.js';
import type { EngineOptions, ModelHead, ModelTail, SpanExecutor, SpanRange } from '../engine/types.js';
import type { ModelSource } from '../model/types.js';
import type { SwarmNode } from '../swarm/node.js';
import { SOFTWARE_VERSION } from '../version.js';
import type { Accelerator, ServerRecord, Throughput } from '../swarm/records/index.js';
import { createRegistry, type AnnounceInput, type Registry, type RegistryOptions } from '../swarm/registry/index.js';
import { createProgress } from '../util/progress.js';
import { BLOCK_PROTOCOL } from '../wire/protocols.js';
import { BlockService } from './block-service.js';
import { ServerConfigError } from './errors.js';
import { GENERATE_PROTOCOL, serveGenerate } from './generate-protocol.js';
import { blocksForMemory, chooseSpan, shouldRebalance, type RebalanceDecision, type SpanView } from './span-choice.js';
import { detectAccelerator, estimateNetworkThroughput, measureCompute, profileBlock } from './throughput.js';

export interface BlockServerOptions {
  readonly node: SwarmNode;
  readonly source: ModelSource;
  /** The model id announced (see swarm/model-id.ts modelIdOf): pins the exact weights. */
  readonly modelId: string;
  /** Blocks to serve: a fixed range, or 'all' (whole model + generate protocol). Omit to choose a span. */
  readonly range?: SpanRange | 'all';
  /** With no range: how many blocks to take (default: as many as fit in free memory). */
  readonly numBlocks?: number;
  /** onnxruntime threads (default 1). */
  readonly threads?: number;
  readonly executionProvider?: EngineOptions['executionProvider'];
  /** Decode steps of different sessions per engine call (default 8; 1 disables batching and its second graph). */
  readonly maxBatch?: number;
  /** Batching window in ms (default 2). */
  readonly batchWindowMs?: number;
  /** KV-cache budget in tokens (wins over cacheBudgetBytes), or in bytes (default 2 GiB). */
  readonly maxCacheTokens?: number;
  readonly cacheBudgetBytes?: number;
  readonly publicName?: string;
  readonly location?: string;
  readonly ethAddress?: string;
  /** Registry to announce with; by default one is created on `node` (and closed by stop()). */
  readonly registry?: Registry;
  readonly registryOptions?: RegistryOptions;
  /** Block-protocol limits (see BlockService). */
  readonly idleTimeoutMs?: number;
  readonly maxSessionMs?: number;
  readonly maxFrameBytes?: number;
  readonly maxSessionsPerStream?: number;
  readonly maxForwardTokens?: number;
  /** Whole-model mode: longest prompt + maxTokens of a generation (default: the model's context length). */
  readonly maxGenerateLength?: number;
  /** How often an auto-chosen span is reconsidered (default 60 000 ms; 0 = never). */
  readonly rebalanceIntervalMs?: number;
  /** Move when minBefore / minAfter < balanceQuality (default 0.75). */
  readonly balanceQuality?: number;
  /** Nominal link bandwidth for the network throughput estimate (default 100 Mbit/s). */
  readonly networkBitsPerSecond?: number;
  /** Memory available for sizing an auto span (default os.freemem()). */
  readonly freeMemoryBytes?: number;
  /** Skip the compute measurement and announce this (tests, or a value measured elsewhere). */
  readonly computeThroughput?: number;
  /** Hide the loading progress line. */
  readonly quiet?: boolean;
  readonly log?: (line: string) => void;
}

export interface BlockServer {
  readonly peerId: string;
  readonly modelId: string;
  /** Blocks in the model. */
  readonly numBlocks: number;
  /** The span served now. */
  readonly range: SpanRange;
  readonly wholeModel: boolean;
  readonly span: SpanExecutor;
  readonly service: BlockService;
  readonly throughput: Throughput;
  readonly registry: Registry;
  /** Our latest signed record. */
  record(): ServerRecord | undefined;
  /** Checks the swarm now and moves if worthwhile (auto-chosen spans only). */
  rebalance(): Promise<RebalanceDecision>;
  /** Announces OFFLINE, closes every stream and session, frees the engine. Does not stop the node. */
  stop(): Promise<void>;
}

const DEFAULT_CACHE_BUDGET_BYTES = 2 * 1024 ** 3;

/** Tokens of KV cache one token costs across a span's blocks, in bytes. */
function cacheBytesPerToken(source: ModelSource, blocks: number): number {
  const c = source.config;
  return 2 * c.numKvHeads * c.headDim * 4 * blocks;
}

/** A rough decode rate for a span before it is loaded (what JOINING announces): 0.1 ms per block + weights at 10 GB/s. */
function estimateCompute(bytesPerBlock: number, blocks: number): number {
  return 1 / (blocks * (1e-4 + bytesPerBlock / 10e9));
}

const round = (x: number) => Math.round(x * 100) / 100;

function validRange(range: SpanRange, numBlocks: number): boolean {
  return Number.isInteger(range.start) && Number.isInteger(range.end) && range.start >= 0 && range.end <= numBlocks && range.start < range.end;
}

export async function createBlockServer(options: BlockServerOptions): Promise<BlockServer> {
  const { node, source, modelId } = options;
  const log = options.log ?? (() => {});
  const config = source.config;
  const total = config.numLayers;
  const wholeModel = options.range === 'all';
  const fixedRange = options.range === 'all' ? { start: 0, end: total } : options.range;
  if (fixedRange && !validRange(fixedRange, total)) {
    throw new ServerConfigError(`blocks [${fixedRange.start}, ${fixedRange.end}) do not fit a model of ${total} blocks`);
  }
  if (options.numBlocks !== undefined && !(Number.isInteger(options.numBlocks) && options.numBlocks >= 1)) {
    throw new ServerConfigError(`numBlocks must be a positive integer, got ${options.numBlocks}`);
  }
  const maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 8));
  const threads = options.threads ?? 1;
  const networkThroughput = round(estimateNetworkThroughput(config.hiddenSize, { bitsPerSecond: options.networkBitsPerSecond }));
  // one block's tensors, read once: the engine footprint (span sizing, JOINING estimate) and the quantization
  const { engineBytes: bytesPerBlock, quantization } = profileBlock(source, fixedRange?.start ?? 0);
  const budgetFor = (blocks: number) =>
    options.maxCacheTokens !== undefined ? options.maxCacheTokens * cacheBytesPerToken(source, blocks) : (options.cacheBudgetBytes ?? DEFAULT_CACHE_BUDGET_BYTES);

  const ownsRegistry = !options.registry;
  const registry = options.registry ?? (await createRegistry(node, options.registryOptions));
  const accelerator: Accelerator = await detectAccelerator({ cuda: options.executionProvider === 'cuda' });

  const lookupViews = async (): Promise<SpanView[]> => {
    try {
      const records = await registry.lookup(modelId, { numBlocks: total });
      return records.map(({ record }) => ({ peerId: record.peerId, start: record.span.start, end: record.span.end, throughput: record.throughput.effective, state: record.state }));
    } catch (error) {
      log(`lookup of ${modelId} failed: ${(error as Error).message}`);
      return [];
    }
  };

  let range: SpanRange;
  if (fixedRange) {
    range = fixedRange;
  } else {
    const length =
      options.numBlocks ??
      blocksForMemory({
        freeBytes: options.freeMemoryBytes ?? os.freemem(),
        bytesPerBlock: bytesPerBlock * (maxBatch > 1 ? 2 : 1),
        numBlocks: total,
        cacheBytesPerTokenPerBlock: cacheBytesPerToken(source, 1),
        cacheTokens: options.maxCacheTokens ?? 0,
      });
    range = chooseSpan(await lookupViews(), total, Math.min(length, total), { self: node.peerId });
    log(`chose blocks [${range.start}, ${range.end}) of ${total}${options.numBlocks === undefined ? ' (sized from free memory)' : ''}`);
  }

  const base = (): Omit<AnnounceInput, 'state' | 'span' | 'throughput' | 'cacheTokensLeft'> => ({
    modelId,
    numBlocks: total,
    dtype: 'f32',
    quantization,
    softwareVersion: SOFTWARE_VERSION,
    accelerator,
    ...(options.publicName !== undefined ? { publicName: options.publicName } : {}),
    ...(options.location !== undefined ? { location: options.location } : {}),
    ...(options.ethAddress !== undefined ? { ethAddress: options.ethAddress } : {}),
  });
  const tokensFor = (blocks: number) => Math.floor(budgetFor(blocks) / cacheBytesPerToken(source, blocks));

  let span: SpanExecutor | undefined;
  let service: BlockService | undefined;
  let head: ModelHead | undefined;
  let tail: ModelTail | undefined;
  let throughput: Throughput = { compute: 0, network: networkThroughput, effective: 0 };
  let stopped = false;
  let moving = false;

  const announceLoad = () => {
    if (!service || stopped) return;
    registry.updateLoad({ activeSessions: service.activeSessions, queuedSteps: service.scheduler.queued, cacheTokensLeft: service.cacheTokensLeft() });
  };

  /** Loads `target`, measures it, and starts serving it. */
  async function bringUp(target: SpanRange): Promise<void> {
    const blocks = target.end - target.start;
    const joining = round(estimateCompute(bytesPerBlock, blocks));
    await registry.announce({
      ...base(),
      state: 'joining',
      span: target,
      throughput: { compute: joining, network: networkThroughput },
      cacheTokensLeft: tokensFor(blocks),
    });
    log(`announced JOINING for blocks [${target.start}, ${target.end})`);

    const progress = createProgress(`loading blocks [${target.start}, ${target.end}) of ${source.location}`, { unit: 'items', ...(options.quiet !== undefined ? { quiet: options.quiet } : {}) });
    const loaded = await loadSpan(source, target, {
      threads,
      maxBatch,
      executionProvider: options.executionProvider,
      cacheBudgetBytes: budgetFor(blocks),
      onLayer: (done, all) => progress.update(done, all),
    });
    if (wholeModel && !head) {
      head = loadHead(source);
      tail = await loadTail(source, { threads, executionProvider: options.executionProvider });
    }
    progress.done(`loaded blocks [${target.start}, ${target.end})${wholeModel ? ' with head and tail' : ''}`);
    if (stopped) {
      await loaded.dispose();
      throw new ServerConfigError('the server was stopped while loading');
    }
    const compute = options.computeThroughput ?? round((await measureCompute(loaded)).stepsPerSecond);
    throughput = { compute, network: networkThroughput, effective: Math.min(compute, networkThroughput) };
    log(`throughput: compute ${compute} steps/s, network ${networkThroughput} tok/s (estimate)`);

    span = loaded;
    range = target;
    service = new BlockService(loaded, {
      maxBatch,
      batchWindowMs: options.batchWindowMs,
      idleTimeoutMs: options.idleTimeoutMs,
      maxSessionMs: options.maxSessionMs,
      maxFrameBytes: options.maxFrameBytes,
      maxSessionsPerStream: options.maxSessionsPerStream,
      maxForwardTokens: options.maxForwardTokens,
      onLoadChange: announceLoad,
      log,
    });
    await registry.update({
      ...base(),
      state: 'online',
      span: target,
      throughput: { compute, network: networkThroughput },
      cacheTokensLeft: service.cacheTokensLeft(),
      load: { activeSessions: 0, queuedSteps: 0 },
    });
    log(`announced ONLINE for blocks [${target.start}, ${target.end})`);
  }

  const streamOptions = { maxInboundStreams: 256, maxOutboundStreams: 64 };
  const refuse = (stream: Stream) => stream.abort(new Error(moving ? 'the server is moving to another span' : 'the server is not serving'));
  const handled: string[] = [];
  const cleanup = async () => {
    await node.libp2p.unhandle(handled).catch(() => {});
    if (ownsRegistry) await registry.close().catch(() => {});
  };
  try {
    await node.libp2p.handle(BLOCK_PROTOCOL, (stream, connection) => (service && !moving && !stopped ? service.handleStream(stream, connection) : refuse(stream)), streamOptions);
    handled.push(BLOCK_PROTOCOL);
    if (wholeModel) {
      await node.libp2p.handle(
        GENERATE_PROTOCOL,
        (stream) =>
          service && head && tail && !stopped
            ? serveGenerate(stream, {
                service,
                head,
                tail,
                vocabSize: config.vocabSize,
                eos: source.tokenizer?.special.eos ?? [],
                maxLength: options.maxGenerateLength ?? config.maxPositionEmbeddings,
                log,
              })
            : refuse(stream),
        streamOptions,
      );
      handled.push(GENERATE_PROTOCOL);
    }
    await bringUp(range);
  } catch (error) {
    await span?.dispose().catch(() => {});
    await registry.withdraw().catch(() => {});
    await cleanup();
    throw error;
  }

  async function rebalance(): Promise<RebalanceDecision> {
    if (fixedRange) return { move: false, reason: 'the span was fixed by the operator', minBefore: 0 };
    if (moving || stopped) return { move: false, reason: 'busy', minBefore: 0 };
    const views = (await lookupViews()).filter((v) => v.peerId !== node.peerId);
    views.push({ peerId: node.peerId, start: range.start, end: range.end, throughput: throughput.effective, state: 'online' });
    const decision = shouldRebalance(views, total, node.peerId, { balanceQuality: options.balanceQuality });
    if (!decision.move || !decision.to || stopped) return decision;
    log(`moving from blocks [${range.start}, ${range.end}) to [${decision.to.start}, ${decision.to.end}): ${decision.reason}`);
    moving = true;
    const previous = range;
    try {
      service?.close(`the server is moving to blocks [${decision.to.start}, ${decision.to.end})`);
      await span?.dispose();
      service = undefined;
      span = undefined;
      try {
        await bringUp(decision.to);
      } catch (error) {
        if (stopped) throw error;
        log(`moving to [${decision.to.start}, ${decision.to.end}) failed (${(error as Error)?.message ?? String(error)}); going back to [${previous.start}, ${previous.end})`);
        await bringUp(previous);
        return { ...decision, move: false, reason: `the move failed: ${(error as Error)?.message ?? String(error)}` };
      }
    } finally {
      moving = false;
    }
    return decision;
  }

  const intervalMs = options.rebalanceIntervalMs ?? 60_000;
  let rebalanceTimer: NodeJS.Timeout | undefined;
  if (!fixedRange && intervalMs > 0) {
    rebalanceTimer = setInterval(() => {
      rebalance().catch((error: unknown) => log(`rebalance failed: ${(error as Error)?.message ?? String(error)}`));
    }, intervalMs);
    rebalanceTimer.unref();
  }

  return {
    peerId: node.peerId,
    modelId,
    numBlocks: total,
    get range() {
      return range;
    },
    wholeModel,
    get span() {
      if (!span) throw new ServerConfigError('the server is between spans');
      return span;
    },
    get service() {
      if (!service) throw new ServerConfigError('the server is between spans');
      return service;
    },
    get throughput() {
      return throughput;
    },
    registry,
    record: () => registry.current()?.record,
    rebalance,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (rebalanceTimer) clearInterval(rebalanceTimer);
      // Offline first, so that no new client picks us while we close; bounded so a dead DHT cannot hang shutdown.
      await Promise.race([
        registry.withdraw().then(
          () => log('announced OFFLINE'),
          (error: unknown) => log(`withdraw failed: ${(error as Error)?.message ?? String(error)}`),
        ),
        new Promise((resolve) => setTimeout(resolve, 5000).unref()),
      ]);
      service?.close();
      await cleanup();
      await span?.dispose().catch(() => {});
    },
  };
}
