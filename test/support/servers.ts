/** One block server on a memory-transport (or TCP) node with a connected client node, and a raw block-protocol client. */
import { peerIdFromString } from '@libp2p/peer-id';
import type { Stream } from '@libp2p/interface';
import type { LoadedModelSource } from '../../src/model/load.js';
import { createBlockServer, type BlockServer, type BlockServerOptions } from '../../src/server/block-server.js';
import { wholeModelGeneration } from '../../src/server/services/generation.js';
import type { BlockServerComponents } from '../../src/server/settings.js';
import { createSwarmNode, type SwarmNode, type SwarmTransport } from '../../src/swarm/node.js';
import { messageChannel, type MessageChannel } from '../../src/wire/channel.js';
import type { DecodedMessage, MessageInput, TensorInput } from '../../src/wire/messages.js';
import { BLOCK_PROTOCOL } from '../../src/wire/protocols.js';
import { FAST } from './swarm.js';

/** The model id a test server announces stories260K under. */
export const STORIES_MODEL_ID = 'stories260K@test';

export interface TestServer {
  readonly server: BlockServer;
  readonly node: SwarmNode;
  /** A client node connected to the server. */
  readonly client: SwarmNode;
  stop(): Promise<void>;
}

/**
 * A block server on a memory-transport node (or loopback TCP, with direct lanes), plus a connected client node; range
 * 'all' serves whole-model generation.
 */
export async function startTestServer(source: LoadedModelSource, options: Partial<BlockServerOptions> = {}, components: Partial<BlockServerComponents> = {}, transport: SwarmTransport = 'memory'): Promise<TestServer> {
  const node = await createSwarmNode({ transport });
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
  const client = await createSwarmNode({ transport, bootstrap: [node.multiaddrs[0]!] });
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

/** Writes `bytes` with a varint length prefix straight onto the stream (as lpStream would). */
export function sendLengthPrefixed(stream: Stream, bytes: Uint8Array): void {
  const prefix: number[] = [];
  let n = bytes.length;
  do {
    prefix.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  stream.send(Uint8Array.from([...prefix, ...bytes]));
}
