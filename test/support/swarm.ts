import { lineLogger } from '../../src/util/logger.js';
import { createSwarmNode, type SwarmNode, type SwarmNodeOptions } from '../../src/swarm/node.js';
import type { AnnounceInput, RegistryOptions } from '../../src/swarm/registry/index.js';

/** Registry timings short enough for tests, generous enough for a loaded 2-core machine. */
export const FAST: RegistryOptions = {
  refreshMs: 5_000,
  ttlMs: 30_000,
  minRepublishMs: 200,
  // upper bounds only (a healthy lookup on loopback takes well under a second); generous for a loaded 2-core machine
  lookupTimeoutMs: 10_000,
  requestTimeoutMs: 5_000,
  ...(process.env.DEBUG_SWARM ? { logger: lineLogger((line) => console.error(`[${new Date().toISOString().slice(17, 23)}] ${line}`)) } : {}),
};

export function serverInput(modelId: string, start: number, end: number, numBlocks: number, extra: Partial<AnnounceInput> = {}): AnnounceInput {
  return {
    modelId,
    numBlocks,
    span: { start, end },
    throughput: { compute: 40 + start, network: 1000 },
    cacheTokensLeft: 8192,
    dtype: 'f32',
    quantization: 'q8_0',
    softwareVersion: '0.1.0',
    accelerator: { kind: 'cpu', name: 'test-cpu' },
    ...extra,
  };
}

/** Starts a bootstrap node and `count` more nodes joined to it; waits until every routing table has all others. */
export async function startSwarm(count: number, options: SwarmNodeOptions = {}): Promise<{ boot: SwarmNode; nodes: SwarmNode[] }> {
  const boot = await createSwarmNode({ transport: 'memory', ...options });
  const nodes = await Promise.all(
    Array.from({ length: count }, () => createSwarmNode({ transport: 'memory', ...options, bootstrap: [boot.multiaddrs[0]!] })),
  );
  await Promise.all([boot, ...nodes].map((node) => node.waitForPeers(count, 15_000)));
  return { boot, nodes };
}

/** Polls `check` until it returns a truthy value (or throws its last error after `timeoutMs`). */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw lastError ?? new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
