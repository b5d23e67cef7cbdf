/** Shared setup for block-server tests: the stories260K model, memory-transport nodes, a raw protocol client. */
import { peerIdFromString } from '@libp2p/peer-id';
import type { Stream } from '@libp2p/interface';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { createBlockServer, type BlockServer, type BlockServerOptions } from '../../src/server/block-server.js';
import { wholeModelGeneration } from '../../src/server/services/generation.js';
import type { BlockServerComponents } from '../../src/server/settings.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { messageChannel, type MessageChannel } from '../../src/wire/channel.js';
import type { DecodedMessage, MessageInput, TensorInput } from '../../src/wire/messages.js';
import { BLOCK_PROTOCOL } from '../../src/wire/protocols.js';
import { STORIES_GGUF } from '../support/models.js';
import { FAST } from '../swarm/helpers.js';

export { STORIES_GGUF };
export const STORIES_MODEL_ID = 'stories260K@test';

export async function openStories(): Promise<LoadedModelSource> {
  return openModel(STORIES_GGUF);
}

export interface TestServer {
  readonly server: BlockServer;
  readonly node: SwarmNode;
  /** A client node connected to the server. */
  readonly client: SwarmNode;
  stop(): Promise<void>;
}

/** A block server on a memory-transport node, plus a connected client node; range 'all' serves whole-model generation. */
export async function startTestServer(source: LoadedModelSource, options: Partial<BlockServerOptions> = {}, components: Partial<BlockServerComponents> = {}): Promise<TestServer> {
  const node = await createSwarmNode({ transport: 'memory' });
  const server = await createBlockServer(
    { node, source, ...components },
    {
      modelId: STORIES_MODEL_ID,
      range: { start: 0, end: source.config.numLayers },
      threads: 1,
      computeThroughput: 1000,
      registryOptions: FAST,
      ...(options.range === 'all' ? { services: { generation: wholeModelGeneration() } } : {}),
      ...options,
    },
  );
  const client = await createSwarmNode({ transport: 'memory', bootstrap: [node.multiaddrs[0]!] });
  return {
    server,
    node,
    client,
    async stop() {
      await server.stop();
      await client.stop();
      await node.stop();
    },
  };
}

export interface RawClient {
  readonly stream: Stream;
  readonly channel: MessageChannel;
  /** Sends one request and returns the one reply. */
  request(header: MessageInput, tensor?: TensorInput): Promise<DecodedMessage>;
  close(): Promise<void>;
}

export async function openBlockStream(client: SwarmNode, serverPeerId: string, options: { maxFrameBytes?: number } = {}): Promise<RawClient> {
  const stream = await client.libp2p.dialProtocol(peerIdFromString(serverPeerId), BLOCK_PROTOCOL);
  const channel = messageChannel(stream, options);
  return {
    stream,
    channel,
    async request(header, tensor) {
      await channel.send(header, tensor);
      return channel.receive({ signal: AbortSignal.timeout(20_000) });
    },
    close: () => channel.close(),
  };
}

/** Deterministic pseudo-random hidden states (values in ±1). */
export function randomHidden(rows: number, hidden: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(rows * hidden);
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 0xffffffff) * 2 - 1;
  }
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
