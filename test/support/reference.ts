/** In-process swarms of real block servers (memory transport) on stories260K, and the local reference. */
import { generate } from '../../src/inference/generate.js';
import { loadLocalModel } from '../../src/inference/local-model.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { createTokenizer } from '../../src/model/tokenizer/index.js';
import { createBlockServer, type BlockServer, type BlockServerOptions } from '../../src/server/block-server.js';
import { wholeModelGeneration } from '../../src/server/services/generation.js';
import { modelIdOf } from '../../src/swarm/model-id.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { FAST } from '../swarm/helpers.js';

export { STORIES_GGUF } from '../support/models.js';

export interface TestServer {
  readonly node: SwarmNode;
  readonly server: BlockServer;
  readonly start: number;
  readonly end: number;
  /** True once killed (node stopped without a goodbye). */
  dead: boolean;
}

export interface TestSwarm {
  readonly boot: SwarmNode;
  readonly servers: TestServer[];
  readonly modelId: string;
  /** A client node joined to the swarm. */
  client(): Promise<SwarmNode>;
  /** Simulates a crash: stops the server's libp2p node (streams reset, no OFFLINE record). */
  kill(peerId: string): Promise<TestServer>;
  stop(): Promise<void>;
}

export async function modelIdFor(source: LoadedModelSource): Promise<string> {
  return modelIdOf(source);
}

/** Starts a bootstrap node and one real block server per span (all on the memory transport). */
export async function startTestSwarm(
  source: LoadedModelSource,
  spans: readonly ({ start: number; end: number } | 'all')[],
  extra: (index: number) => Partial<BlockServerOptions> = () => ({}),
): Promise<TestSwarm> {
  const modelId = await modelIdFor(source);
  const boot = await createSwarmNode({ transport: 'memory' });
  const bootstrap = [boot.multiaddrs[0]!];
  const nodes: SwarmNode[] = [boot];
  const servers: TestServer[] = [];
  try {
    for (const [i, span] of spans.entries()) {
      const node = await createSwarmNode({ transport: 'memory', bootstrap });
      nodes.push(node);
      await node.waitForPeers(1, 15_000);
      const server = await createBlockServer(
        { node, source },
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
      const node = await createSwarmNode({ transport: 'memory', bootstrap });
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

/** Greedy generation with the whole model in this process: the reference every swarm run must equal. */
export async function localReference(source: LoadedModelSource, prompt: string, maxTokens: number): Promise<{ ids: number[]; tokens: number[]; text: string; logits: Float32Array[] }> {
  const tokenizer = createTokenizer(source.tokenizer!);
  const model = await loadLocalModel(source);
  const ids = tokenizer.encode(prompt);
  const session = await model.openSession(ids.length + maxTokens);
  const logits: Float32Array[] = [];
  const recorded = { next: async (next: readonly number[]) => { const out = await session.next(next); logits.push(out); return out; }, close: () => session.close() };
  const tokens: number[] = [];
  let text = '';
  for await (const event of generate(recorded, tokenizer, ids, { temperature: 0, maxTokens, stopTokens: [] })) {
    if (event.token >= 0) tokens.push(event.token);
    text += event.text;
  }
  await session.close();
  await model.close();
  return { ids, tokens, text, logits };
}

export { openModel };
