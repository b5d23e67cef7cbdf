/**
 * Generation on a whole-model server (LlamaNet style): the server holds every block plus the head, samples, and
 * streams token ids back over /corolla/generate/1.0.0 (wire/generate.ts, generate-client.ts). The client only tokenizes
 * and detokenizes. Among whole-model servers the client prefers the least loaded (live, signed heartbeat), then the
 * fastest (announced compute throughput and measured round trip).
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { emptyStats, TextStream, type GenerationEvent, type GenerationStream, type PromptOptions } from '../inference/generate.js';
import type { ModelConfig, Tokenizer } from '../model/types.js';
import type { Registry } from '../swarm/registry/index.js';
import type { SwarmNode } from '../swarm/node.js';
import { GENERATE_SAMPLING_KEYS, type GenerateSampling } from '../wire/generate.js';
import { GENERATE_PROTOCOL } from '../wire/protocols.js';
import type { BanList } from './bans.js';
import { SwarmUnavailableError } from './errors.js';
import type { SwarmDirectory } from './directory.js';
import { remoteGenerate } from './generate-client.js';
import { usableServers, type PlannerRecord } from './route-planner.js';

/** Stop strings apply here, on the streamed text; sampling and stop tokens travel to the server. */
export interface WholeModelGenerateOptions extends PromptOptions {
  /** Longest wait for one token (ms). Default 60 000. */
  readonly idleTimeoutMs?: number;
  /** Use this server (peer id) rather than the best-ranked one. */
  readonly peerId?: string;
}

export interface RankedServer {
  readonly record: PlannerRecord;
  /** Live load from the server's signed heartbeat (undefined when it did not answer). */
  readonly load?: { activeSessions: number; queuedSteps: number };
  readonly rttMs?: number;
  /** Estimated ms per token: compute, round trip, and the queue ahead. Lower is better. */
  readonly score: number;
}

/** Whole-model servers with room for `maxLength` tokens, best first. Servers that miss the heartbeat rank last. */
export async function rankWholeModelServers(
  directory: SwarmDirectory,
  registry: Registry,
  options: { numBlocks: number; maxLength: number; banned?: (peerId: string) => boolean; heartbeatTimeoutMs?: number },
): Promise<RankedServer[]> {
  const records = await directory.records();
  const { servers } = usableServers(records, { numBlocks: options.numBlocks, maxLength: options.maxLength, banned: options.banned });
  const spanning = servers.filter((server) => server.span.start === 0 && server.span.end === options.numBlocks);
  await directory.measure(spanning.map((server) => server.peerId));
  // a server may hold every block without offering whole-model generation (identify tells, once connected)
  const offers = await Promise.all(spanning.map((server) => offersWholeModelGeneration(directory.node, server.peerId)));
  const whole = spanning.filter((_, i) => offers[i]);
  const rtt = directory.rttMs();
  const ranked = await Promise.all(
    whole.map(async (record): Promise<RankedServer> => {
      const stepMs = 1000 / Math.max(record.throughput.effective, 1e-3);
      let load: RankedServer['load'];
      try {
        const report = await withTimeout(registry.heartbeat(record.peerId, { modelId: record.modelId, addrs: record.addrs }), options.heartbeatTimeoutMs ?? 3_000);
        if (report.record.state === 'online' && report.record.cacheTokensLeft >= options.maxLength) load = report.record.load;
      } catch {
        // no live answer: rank it after every server that answered
      }
      const queue = load ? load.queuedSteps + 0.1 * load.activeSessions : 1e6;
      return { record, load, rttMs: rtt.get(record.peerId), score: stepMs * (1 + queue) + (rtt.get(record.peerId) ?? 20) };
    }),
  );
  return ranked.sort((a, b) => a.score - b.score || (a.record.peerId < b.record.peerId ? -1 : 1));
}

/**
 * False when `peerId`'s protocols are known (identify ran on a connection) and lack /corolla/generate: it serves every
 * block to routed sessions but does not run whole generations. Unknown protocols count as offered.
 */
export async function offersWholeModelGeneration(node: SwarmNode, peerId: string): Promise<boolean> {
  try {
    const peer = await node.libp2p.peerStore.get(peerIdFromString(peerId));
    return peer.protocols.length === 0 || peer.protocols.includes(GENERATE_PROTOCOL);
  } catch {
    return true;
  }
}

interface WholeModelHost {
  readonly node: SwarmNode;
  readonly tokenizer: Tokenizer;
  readonly config: ModelConfig;
  readonly bans: BanList;
  wholeModelServers(maxLength?: number): Promise<RankedServer[]>;
}

/**
 * Streams text events of a whole-model generation, with the same stats as the local loop (`servers`: the one
 * server, all blocks). A server that fails before its first token is banned and the next one is tried; once
 * tokens have streamed, a failure ends the generation with the error (the server's sampler state cannot be moved);
 * a server that streams more tokens than asked for or ids outside the vocabulary is cut off and banned either way.
 */
export function runWholeModelGeneration(host: WholeModelHost, prompt: readonly number[], options: WholeModelGenerateOptions): GenerationStream {
  const stats = emptyStats(prompt.length);
  async function* run(): AsyncGenerator<GenerationEvent, void, undefined> {
    const maxLength = prompt.length + options.maxTokens;
    const ranked = options.peerId
      ? (await host.wholeModelServers(maxLength)).filter((server) => server.record.peerId === options.peerId)
      : await host.wholeModelServers(maxLength);
    if (ranked.length === 0) {
      throw new SwarmUnavailableError(`no whole-model server with room for ${maxLength} tokens${options.peerId ? ` (peer ${options.peerId})` : ''}`, { failures: [], elapsedMs: 0 });
    }
    const failures: unknown[] = [];
    const started = performance.now();
    const sampling = pickSampling(options);
    for (const server of ranked) {
      const text = new TextStream(host.tokenizer, prompt, options.stop);
      const requested = performance.now();
      let firstTokenAt: number | undefined;
      try {
        const tokens = remoteGenerate(
          host.node.libp2p,
          server.record.peerId,
          { prompt, maxTokens: options.maxTokens, sampling, ...(options.stopTokens ? { stopTokens: options.stopTokens } : {}) },
          {
            signal: options.signal,
            idleTimeoutMs: options.idleTimeoutMs,
            vocabSize: host.config.vocabSize,
            addrs: (server.record.addrs ?? []).map((addr) => multiaddr(addr)),
          },
        );
        stats.servers = [{ peerId: server.record.peerId, blocks: { start: 0, end: host.config.numLayers }, promptTokens: prompt.length, generatedTokens: 0, replayedTokens: 0, failed: false }];
        try {
          for (;;) {
            const next = await tokens.next();
            if (next.done) {
              stats.finishReason = next.value.finishReason;
              break;
            }
            if (firstTokenAt === undefined) {
              firstTokenAt = performance.now();
              stats.prefillMs = firstTokenAt - requested;
            } else stats.decodeSteps++;
            stats.generatedTokens++;
            stats.servers[0]!.generatedTokens++;
            const { emit, stopped } = text.push(next.value);
            yield { token: next.value, text: emit };
            if (stopped) {
              stats.finishReason = 'stop';
              return; // leaving the loop cancels the generation on the server
            }
          }
        } finally {
          if (firstTokenAt !== undefined) stats.decodeMs = performance.now() - firstTokenAt;
          await tokens.return(undefined as never).catch(() => {});
        }
        const tail = text.finish();
        if (tail) yield { token: -1, text: tail };
        return;
      } catch (error) {
        if (options.signal?.aborted) {
          stats.finishReason = 'abort';
          return;
        }
        if (stats.generatedTokens > 0) {
          stats.servers![0]!.failed = true;
          // a server that broke the protocol is not trusted again, even after streaming tokens
          if ((error as { code?: string })?.code === 'GENERATE_MISBEHAVED') host.bans.ban(server.record.peerId, (error as Error).message);
          throw error;
        }
        stats.servers = undefined;
        failures.push(error);
        host.bans.ban(server.record.peerId, (error as Error)?.message ?? 'generate failed');
      }
    }
    throw new SwarmUnavailableError(`every whole-model server failed (${failures.length} tried)`, { failures, elapsedMs: performance.now() - started });
  }
  return Object.assign(run(), { stats });
}

function pickSampling(options: WholeModelGenerateOptions): GenerateSampling {
  const out: Record<string, number> = {};
  for (const key of GENERATE_SAMPLING_KEYS) if (options[key] !== undefined) out[key] = options[key];
  return out;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error) => (clearTimeout(timer), reject(error)),
    );
  });
}
