/**
 * A whole-model server that streams more tokens than asked for, or ids outside the vocabulary, is cut off with a
 * typed error (GENERATE_MISBEHAVED) and banned, even after tokens have streamed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lpStream } from '@libp2p/utils';
import { BanList } from '../../src/client/bans.js';
import { remoteGenerate } from '../../src/client/generate-client.js';
import { RemoteGenerateError } from '../../src/client/errors.js';
import { runWholeModelGeneration, type RankedServer } from '../../src/client/whole-model.js';
import type { ModelConfig, Tokenizer } from '../../src/model/types.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { GENERATE_PROTOCOL } from '../../src/wire/generate.js';

const VOCAB = 512;
const encoder = new TextEncoder();

let server: SwarmNode;
let client: SwarmNode;
/** What the fake server streams for the next request. */
let script: (maxTokens: number) => number[] = () => [];
let sent = 0;

beforeAll(async () => {
  server = await createSwarmNode({ transport: 'memory' });
  client = await createSwarmNode({ transport: 'memory', bootstrap: [server.multiaddrs[0]!] });
  await server.libp2p.handle(GENERATE_PROTOCOL, async (stream) => {
    const lp = lpStream(stream);
    const request = JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as { maxTokens: number };
    try {
      for (const token of script(request.maxTokens)) {
        await lp.write(encoder.encode(JSON.stringify({ token })));
        sent++;
      }
      await lp.write(encoder.encode(JSON.stringify({ done: true, finishReason: 'length' })));
      await stream.close();
    } catch {
      // the client cut us off
    }
  });
});

afterAll(async () => {
  await Promise.all([client?.stop(), server?.stop()]);
});

async function drain(maxTokens: number): Promise<{ tokens: number[]; error?: unknown }> {
  const tokens: number[] = [];
  try {
    for await (const token of remoteGenerate(client.libp2p, server.peerId, { prompt: [1, 2, 3], maxTokens, sampling: {} }, { vocabSize: VOCAB, idleTimeoutMs: 5000 })) tokens.push(token);
    return { tokens };
  } catch (error) {
    return { tokens, error };
  }
}

describe('remoteGenerate against a misbehaving whole-model server', () => {
  it('cuts off a server that streams more tokens than max_tokens', async () => {
    script = () => Array.from({ length: 5000 }, (_, i) => i % VOCAB);
    sent = 0;
    const { tokens, error } = await drain(8);
    expect(error).toBeInstanceOf(RemoteGenerateError);
    expect((error as RemoteGenerateError).remoteCode ?? (error as RemoteGenerateError).code).toBe('GENERATE_MISBEHAVED');
    expect(tokens).toHaveLength(8);
  });

  it('cuts off a server that streams a token id outside the vocabulary', async () => {
    script = () => [5, 6, VOCAB + 7, 8];
    const { tokens, error } = await drain(8);
    expect((error as RemoteGenerateError).remoteCode ?? (error as RemoteGenerateError).code).toBe('GENERATE_MISBEHAVED');
    expect((error as Error).message).toMatch(/outside the vocabulary/);
    expect(tokens).toEqual([5, 6]);
  });

  it('an honest stream of exactly max_tokens in-vocabulary ids passes', async () => {
    script = (maxTokens) => Array.from({ length: maxTokens }, (_, i) => VOCAB - 1 - i);
    const { tokens, error } = await drain(6);
    expect(error).toBeUndefined();
    expect(tokens).toEqual([511, 510, 509, 508, 507, 506]);
  });

  it('whole-model generation bans the server after it misbehaved mid-stream', async () => {
    script = () => Array.from({ length: 100 }, () => 3);
    const bans = new BanList();
    const ranked = [{ record: { peerId: server.peerId, addrs: server.multiaddrs }, score: 1 } as unknown as RankedServer];
    const host = {
      node: client,
      tokenizer: undefined as unknown as Tokenizer,
      config: { vocabSize: VOCAB, numLayers: 5 } as ModelConfig,
      bans,
      wholeModelServers: async () => ranked,
    };
    const events: number[] = [];
    let error: unknown;
    try {
      for await (const event of runWholeModelGeneration(host, [1, 2, 3], { maxTokens: 4 })) events.push(event.token);
    } catch (e) {
      error = e;
    }
    expect((error as RemoteGenerateError).code).toBe('GENERATE_MISBEHAVED');
    expect(events).toEqual([3, 3, 3, 3]);
    expect(bans.isBanned(server.peerId)).toBe(true);
  });
});
