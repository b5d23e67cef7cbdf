/** The KV cache's element type, its size per token, and the capacity a session's buffers get. */
import type { ModelConfig } from '../model/types.js';

/** Element type of a session's KV cache: f32 (exact), or f16 (half the memory and bandwidth, as llama.cpp's default). */
export type KvCacheType = 'f32' | 'f16';

/** KV-cache bytes one token costs across `blocks` blocks: a K and a V row per block. */
export function kvCacheBytesPerToken(config: Pick<ModelConfig, 'numKvHeads' | 'headDim'>, blocks: number, type: KvCacheType = 'f32'): number {
  return 2 * config.numKvHeads * config.headDim * (type === 'f16' ? 2 : 4) * blocks;
}

/**
 * The capacity that holds `needed` tokens: rounded up to a quantum of 1/8 of its power of two (at least 64), so the
 * rows fed past the position (masked, but multiplied) stay under about 12% while the buffers are re-laid out only
 * every eighth of their length; at most `limit` (the model's context). The shapes fed to the graph, and so the
 * bits of its results, depend on it: it depends only on `needed` and `limit`, and a capacity chosen at n still holds
 * every n' up to itself, and equals capacityFor(n') there.
 */
export function capacityFor(needed: number, limit: number): number {
  const quantum = Math.max(64, 2 ** (Math.floor(Math.log2(Math.max(1, needed))) - 3));
  return Math.min(limit, Math.ceil(needed / quantum) * quantum);
}
