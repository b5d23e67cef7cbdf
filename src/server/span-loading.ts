/**
 * Sizing and loading the span a server holds: the KV budget per span, how many blocks fit in memory, the rough
 * rate a span announces before it is measured, and the load itself (with progress events).
 */
import os from 'node:os';
import { kvCacheBytesPerToken } from '../engine/kv-cache.js';
import { loadSpan } from '../engine/span-executor.js';
import type { SpanExecutor } from '../engine/types.js';
import type { ModelSource } from '../model/types.js';
import { formatBlockRange, type BlockRange } from '../util/blocks.js';
import type { BlockServerComponents, ResolvedSettings } from './settings.js';
import { blocksForMemory } from './span-choice.js';
import { progressTask } from '../util/progress.js';

/** KV-cache bytes one token costs across `blocks` blocks, in the cache type the server keeps. */
export function cacheBytesPerToken(source: ModelSource, settings: Pick<ResolvedSettings, 'kvCacheType'>, blocks: number): number {
  return kvCacheBytesPerToken(source.config, blocks, settings.kvCacheType);
}

/** The KV budget in bytes of a span of `blocks` blocks. */
export function cacheBudgetFor(source: ModelSource, settings: ResolvedSettings, blocks: number): number {
  return settings.maxCacheTokens !== undefined ? settings.maxCacheTokens * cacheBytesPerToken(source, settings, blocks) : settings.cacheBudgetBytes;
}

/** Tokens of KV cache a span of `blocks` blocks can hold. */
export function cacheTokensFor(source: ModelSource, settings: ResolvedSettings, blocks: number): number {
  return Math.floor(cacheBudgetFor(source, settings, blocks) / cacheBytesPerToken(source, settings, blocks));
}

/** A rough decode rate for a span before it is loaded (what JOINING announces): 0.1 ms per block + weights at 10 GB/s. */
export function estimateCompute(bytesPerBlock: number, blocks: number): number {
  return 1 / (blocks * (1e-4 + bytesPerBlock / 10e9));
}

/** How many blocks an auto-placed span takes: the operator's count, or as many as fit in free memory. */
export function autoSpanLength(source: ModelSource, settings: ResolvedSettings, bytesPerBlock: number): number {
  const total = source.config.numLayers;
  const length =
    settings.numBlocks ??
    blocksForMemory({
      freeBytes: settings.freeMemoryBytes ?? os.freemem(),
      // batching builds a second graph, with its own copy of the packed weights
      bytesPerBlock: bytesPerBlock * (settings.maxBatch > 1 ? 2 : 1),
      numBlocks: total,
      cacheBytesPerTokenPerBlock: cacheBytesPerToken(source, settings, 1),
      cacheTokens: settings.maxCacheTokens ?? 0,
    });
  return Math.min(length, total);
}

/** Loads `range` for serving, reporting each block read to `onProgress`. */
export async function loadServedSpan(
  source: ModelSource,
  range: BlockRange,
  settings: ResolvedSettings,
  onProgress: BlockServerComponents['onProgress'],
): Promise<SpanExecutor> {
  const progress = progressTask(onProgress, `loading blocks ${formatBlockRange(range)} of ${source.location}`, 'items');
  const span = await loadSpan(source, range, {
    threads: settings.threads,
    maxBatch: settings.maxBatch,
    executionProvider: settings.executionProvider,
    kvCacheType: settings.kvCacheType,
    cacheBudgetBytes: cacheBudgetFor(source, settings, range.end - range.start),
    onLayer: (done, total) => progress.update(done, total),
  });
  progress.done(`loaded blocks ${formatBlockRange(range)}`);
  return span;
}
