/**
 * What a block server is made of, kept apart (the js-libp2p way): components are the collaborators it is given
 * (a swarm node, a model, a registry, a logger), options are plain settings. `resolveSettings` checks the options
 * once and fills in every default from defaults.ts.
 */
import type { LocalAccount } from 'viem';
import type { EngineOptions } from '../engine/types.js';
import type { ModelSource } from '../model/types.js';
import type { SwarmNode } from '../swarm/node.js';
import type { Registry, RegistryOptions } from '../swarm/registry/index.js';
import { isValidBlockRange, type BlockRange } from '../util/blocks.js';
import type { ComponentLogger } from '../util/logger.js';
import {
  DEFAULT_BATCH_WINDOW_MS,
  DEFAULT_CACHE_BUDGET_BYTES,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_FORWARD_TOKENS,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_SESSION_MS,
  DEFAULT_MAX_SESSIONS_PER_STREAM,
  DEFAULT_NETWORK_BPS,
  DEFAULT_THREADS,
} from './defaults.js';
import { ServerConfigError } from './errors.js';
import type { OnProgress } from '../util/progress.js';

export interface BlockServerComponents {
  readonly node: SwarmNode;
  readonly source: ModelSource;
  /** Registry to announce with; by default one is created on `node` (and closed by stop()). */
  readonly registry?: Registry;
  /** Default: silentLogger. */
  readonly logger?: ComponentLogger;
  /** Loading progress, for a progress line. */
  readonly onProgress?: OnProgress;
  /**
   * The operator's Ethereum account: the server announces its address with a binding to its peer id signed by this
   * key (chain/binding.ts), which is what readers trust. Without it, `ethAddress` is announced unbound.
   */
  readonly ethAccount?: LocalAccount;
}

export interface BlockServerSettings {
  /** The model id announced (see swarm/model-id.ts modelIdOf): pins the exact weights. */
  readonly modelId: string;
  /** Blocks to serve: a fixed range, or 'all' (every block). Omit to choose a span where the swarm is weakest. */
  readonly range?: BlockRange | 'all';
  /** With no range: how many blocks to take (default: as many as fit in free memory). */
  readonly numBlocks?: number;
  /** onnxruntime threads (default DEFAULT_THREADS). */
  readonly threads?: number;
  readonly executionProvider?: EngineOptions['executionProvider'];
  /** Element type of the KV cache (default f32; f16 halves its memory, as llama.cpp does by default). */
  readonly kvCacheType?: EngineOptions['kvCacheType'];
  /** Decode steps of different sessions per engine call (default DEFAULT_MAX_BATCH; 1 disables batching and its second graph). */
  readonly maxBatch?: number;
  /** Batching window in ms (default DEFAULT_BATCH_WINDOW_MS). */
  readonly batchWindowMs?: number;
  /** KV-cache budget in tokens (wins over cacheBudgetBytes), or in bytes (default DEFAULT_CACHE_BUDGET_BYTES). */
  readonly maxCacheTokens?: number;
  readonly cacheBudgetBytes?: number;
  readonly publicName?: string;
  readonly location?: string;
  /** Address for rewards when no `ethAccount` is given (announced without a binding: readers will not pay it). */
  readonly ethAddress?: string;
  /** Settings of the registry created when none is given. */
  readonly registryOptions?: RegistryOptions;
  /** Block-protocol limits (see BlockService). */
  readonly idleTimeoutMs?: number;
  readonly maxSessionMs?: number;
  readonly maxFrameBytes?: number;
  readonly maxSessionsPerStream?: number;
  readonly maxForwardTokens?: number;
  /** Per-peer / per-IP quotas (see quotas.ts; defaults DEFAULT_MAX_SESSIONS_PER_PEER etc. in defaults.ts). */
  readonly maxSessionsPerPeer?: number;
  readonly maxStreamsPerPeer?: number;
  /** Share of the KV budget one peer may reserve while others hold sessions, in (0, 1]. */
  readonly peerCacheShare?: number;
  readonly maxPeerBytesInFlight?: number;
  readonly ipQuotaMultiplier?: number;
  /** Dribbling sessions: after this grace, fewer than minSessionRate cached tokens per second of age closes them. */
  readonly slowSessionGraceMs?: number;
  readonly minSessionRate?: number;
  /** Nominal link bandwidth for the network throughput estimate (default DEFAULT_NETWORK_BPS). */
  readonly networkBitsPerSecond?: number;
  /** Memory available for sizing an auto span (default os.freemem()). */
  readonly freeMemoryBytes?: number;
  /** Skip the compute measurement and announce this (tests, or a value measured elsewhere). */
  readonly computeThroughput?: number;
}

/** The settings resolveSettings fills in from defaults.ts. */
type Defaulted = 'threads' | 'maxBatch' | 'batchWindowMs' | 'cacheBudgetBytes' | 'idleTimeoutMs' | 'maxSessionMs' | 'maxFrameBytes' | 'maxSessionsPerStream' | 'maxForwardTokens' | 'networkBitsPerSecond';

/** Settings with every default filled in and checked against the model. */
export type ResolvedSettings = Omit<BlockServerSettings, 'range' | Defaulted> & { readonly [K in Defaulted]-?: NonNullable<BlockServerSettings[K]> } & {
  /** The operator's range ('all' made concrete); undefined when the server chooses its span (and may move). */
  readonly fixedRange: BlockRange | undefined;
};

export function resolveSettings(options: BlockServerSettings, modelBlocks: number): ResolvedSettings {
  const fixedRange = options.range === 'all' ? { start: 0, end: modelBlocks } : options.range;
  if (fixedRange && !isValidBlockRange(fixedRange, modelBlocks)) {
    throw new ServerConfigError(`blocks [${fixedRange.start}, ${fixedRange.end}) do not fit a model of ${modelBlocks} blocks`);
  }
  if (options.numBlocks !== undefined && !(Number.isInteger(options.numBlocks) && options.numBlocks >= 1)) {
    throw new ServerConfigError(`numBlocks must be a positive integer, got ${options.numBlocks}`);
  }
  if (options.peerCacheShare !== undefined && !(options.peerCacheShare > 0 && options.peerCacheShare <= 1)) {
    throw new ServerConfigError(`peerCacheShare must be in (0, 1], got ${options.peerCacheShare}`);
  }
  for (const key of ['maxSessionsPerPeer', 'maxStreamsPerPeer', 'maxPeerBytesInFlight', 'ipQuotaMultiplier'] as const) {
    const value = options[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) throw new ServerConfigError(`${key} must be a positive integer, got ${value}`);
  }
  const { range: _range, ...given } = options;
  return {
    ...given,
    fixedRange,
    threads: options.threads ?? DEFAULT_THREADS,
    maxBatch: Math.max(1, Math.floor(options.maxBatch ?? DEFAULT_MAX_BATCH)),
    batchWindowMs: options.batchWindowMs ?? DEFAULT_BATCH_WINDOW_MS,
    cacheBudgetBytes: options.cacheBudgetBytes ?? DEFAULT_CACHE_BUDGET_BYTES,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxSessionMs: options.maxSessionMs ?? DEFAULT_MAX_SESSION_MS,
    maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    maxSessionsPerStream: options.maxSessionsPerStream ?? DEFAULT_MAX_SESSIONS_PER_STREAM,
    maxForwardTokens: options.maxForwardTokens ?? DEFAULT_MAX_FORWARD_TOKENS,
    networkBitsPerSecond: options.networkBitsPerSecond ?? DEFAULT_NETWORK_BPS,
  };
}
