/**
 * Opens the shared state a gateway's settings ask for: Redis when given a URL (several gateways, one limit), memory
 * otherwise (a lone gateway).
 */
import type { ComponentLogger } from '../../util/logger.js';
import type { SharedState } from '../types.js';
import { MemorySharedState } from './memory.js';
import { RedisSharedState } from './redis.js';

export interface OpenSharedStateOptions {
  readonly redisUrl?: string;
  /** Redis key prefix (default 'corolla:'). */
  readonly keyPrefix?: string;
  /** How long a live session outlives its last update (ms, default 60 s). */
  readonly sessionTtlMs?: number;
  readonly logger?: ComponentLogger;
}

/** Throws SharedStateError when a Redis URL is given and Redis cannot be reached. */
export async function openSharedState(options: OpenSharedStateOptions = {}): Promise<SharedState> {
  const { redisUrl, keyPrefix, sessionTtlMs, logger } = options;
  if (redisUrl === undefined || redisUrl === '') return new MemorySharedState({ sessionTtlMs });
  return RedisSharedState.connect({ url: redisUrl, keyPrefix, sessionTtlMs, logger });
}
