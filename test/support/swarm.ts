/** In-process swarms on the memory transport: bare nodes, and real block servers on a model; registry timings for tests. */
import type { SwarmInferenceSession } from '../../src/client/inference-session.js';
import { argmax } from '../../src/inference/sampling/index.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { createBlockServer, type BlockServer, type BlockServerOptions } from '../../src/server/block-server.js';
import type { BlockServerComponents } from '../../src/server/settings.js';
import { wholeModelGeneration } from '../../src/server/services/generation.js';
import { modelIdOf } from '../../src/swarm/model-id.js';
import { createSwarmNode, type SwarmNode, type SwarmNodeOptions, type SwarmTransport } from '../../src/swarm/node.js';
import type { AnnounceInput, RegistryOptions } from '../../src/swarm/registry/index.js';
import { lineLogger } from '../../src/util/logger.js';

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

/** What a server on blocks [start, end) of a `numBlocks`-block model announces; `extra` overrides fields. */
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

/** One block server of a TestSwarm. */
export interface SwarmServer {
  readonly node: SwarmNode;
  readonly server: BlockServer;
  readonly start: number;
  readonly end: number;
  /** True once killed (node stopped without a goodbye). */
  dead: boolean;
}

export interface TestSwarm {
  readonly boot: SwarmNode;
  readonly servers: SwarmServer[];
  readonly modelId: string;
  /** A client node joined to the swarm. */
  client(): Promise<SwarmNode>;
  /** Simulates a crash: stops the server's node (streams and lanes reset, no OFFLINE record). */
  kill(peerId: string): Promise<SwarmServer>;
  stop(): Promise<void>;
}

/** Starts a bootstrap node and one real block server per span (on the memory transport unless told); `extra` and `components` add to server i's. */
export async function startTestSwarm(
  source: LoadedModelSource,
  spans: readonly ({ start: number; end: number } | 'all')[],
  extra: (index: number) => Partial<BlockServerOptions> = () => ({}),
  components: (index: number) => Partial<BlockServerComponents> = () => ({}),
  /** 'tcp' puts every node on loopback TCP, with direct lanes (default 'memory': no lanes). */
  transport: SwarmTransport = 'memory',
): Promise<TestSwarm> {
  const modelId = await modelIdOf(source);
  const boot = await createSwarmNode({ transport });
  const bootstrap = [boot.multiaddrs[0]!];
  const nodes: SwarmNode[] = [boot];
  const servers: SwarmServer[] = [];
  try {
    for (const [i, span] of spans.entries()) {
      const node = await createSwarmNode({ transport, bootstrap });
      nodes.push(node);
      await node.waitForPeers(1, 15_000);
      const server = await createBlockServer(
        { node, source, ...components(i) },
        {
          modelId,
          range: span,
          maxBatch: 1,
          computeThroughput: 1000,
          registryOptions: FAST,
          ...(span === 'all' ? { services: { generation: wholeModelGeneration() } } : {}),
          ...extra(i),
        },
      );
      // A long-running server has run both graph branches already; warm them so timings show steady state.
      const H = source.config.hiddenSize;
      server.span.openSession('warm-up', 8);
      await server.span.step({ sessionId: 'warm-up', hidden: new Float32Array(4 * H).fill(0.1) });
      await server.span.step({ sessionId: 'warm-up', hidden: new Float32Array(H).fill(0.1) });
      server.span.closeSession('warm-up');
      const range = span === 'all' ? { start: 0, end: source.config.numLayers } : span;
      servers.push({ node, server, start: range.start, end: range.end, dead: false });
    }
  } catch (error) {
    await Promise.all(servers.map((s) => s.server.stop().catch(() => {})));
    await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
    throw error;
  }
  const clients: SwarmNode[] = [];
  return {
    boot,
    servers,
    modelId,
    async client() {
      const node = await createSwarmNode({ transport, bootstrap });
      await node.waitForPeers(1, 15_000);
      clients.push(node);
      return node;
    },
    async kill(peerId) {
      const target = servers.find((s) => s.server.peerId === peerId);
      if (!target) throw new Error(`no test server ${peerId}`);
      target.dead = true;
      await target.node.stop();
      return target;
    },
    async stop() {
      await Promise.all(servers.map((s) => s.server.stop().catch(() => {})));
      await Promise.all([...clients, ...servers.map((s) => s.node), boot].map((n) => n.stop().catch(() => {})));
    },
  };
}

/** What greedy decoding at the hidden-state level needs: the client's embeddings and LM head. */
export interface HiddenDecoder {
  readonly embeddings: { embed(ids: readonly number[]): Float32Array };
  readonly lmHead: { logits(hidden: Float32Array): Promise<Float32Array> };
  readonly hiddenSize: number;
}

/**
 * Greedy decoding through a swarm session at the hidden-state level: the prompt, then `steps − 1` sampled ids, one
 * step each. Returns every step's output bytes; `before(i)` runs ahead of step i (to kill a server, say).
 */
export async function decodeHidden(
  session: Pick<SwarmInferenceSession, 'step'>,
  decoder: HiddenDecoder,
  prompt: readonly number[],
  steps: number,
  before: (step: number) => Promise<void> = async () => {},
): Promise<Float32Array[]> {
  const outputs: Float32Array[] = [];
  let ids = [...prompt];
  for (let i = 0; i < steps; i++) {
    await before(i);
    const out = await session.step(decoder.embeddings.embed(ids), ids.length, { sampled: i > 0 });
    outputs.push(out);
    ids = [argmax(await decoder.lmHead.logits(out.subarray(out.length - decoder.hiddenSize)))];
  }
  return outputs;
}
