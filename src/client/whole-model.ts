/**
 * Generation on a whole-model server (LlamaNet style): the server holds every block plus the head, samples, and
 * streams token ids back over /corolla/generate/1.0.0 (src/server/generate-protocol.ts). The client only tokenizes
 * and detokenizes. Among whole-model servers the client prefers the least loaded (live, signed heartbeat), then the
 * fastest (announced compute throughput and measured round trip).
 */
import type { GenerationEvent } from '../engine/generate.js';
import { StopMatcher, type SamplingOptions } from '../engine/sampling.js';
import type { Tokenizer } from '../model/types.js';
import type { Registry } from '../swarm/registry/index.js';
import type { SwarmNode } from '../swarm/node.js';
import { multiaddr } from '@multiformats/multiaddr';
import { remoteGenerate } from '../server/generate-protocol.js';
import type { BanList } from './bans.js';
import { SwarmUnavailableError } from './errors.js';
import type { SwarmDirectory } from './directory.js';
import { usableServers, type PlannerRecord } from './route-planner.js';

export interface WholeModelGenerateOptions extends SamplingOptions {
  readonly maxTokens: number;
  /** Stop strings (applied here, on the streamed text). */
  readonly stop?: readonly string[];
  /** Stop token ids (default: the model's EOS ids). */
  readonly stopTokens?: readonly number[];
  readonly signal?: AbortSignal;
  readonly addBos?: boolean;
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
  const whole = servers.filter((server) => server.span.start === 0 && server.span.end === options.numBlocks);
  await directory.measure(whole.map((server) => server.peerId));
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

interface WholeModelHost {
  readonly node: SwarmNode;
  readonly tokenizer: Tokenizer;
  readonly bans: BanList;
  wholeModelServers(maxLength?: number): Promise<RankedServer[]>;
}

/**
 * Streams text events of a whole-model generation. A server that fails before its first token is banned and the
 * next one is tried; once tokens have streamed, a failure ends the generation with the error (the server's sampler
 * state cannot be moved).
 */
export async function* runWholeModelGeneration(host: WholeModelHost, prompt: readonly number[], options: WholeModelGenerateOptions): AsyncGenerator<GenerationEvent> {
  const maxLength = prompt.length + options.maxTokens;
  const ranked = options.peerId
    ? (await host.wholeModelServers(maxLength)).filter((server) => server.record.peerId === options.peerId)
    : await host.wholeModelServers(maxLength);
  if (ranked.length === 0) {
    throw new SwarmUnavailableError(`no whole-model server with room for ${maxLength} tokens${options.peerId ? ` (peer ${options.peerId})` : ''}`, { failures: [], elapsedMs: 0 });
  }
  const failures: unknown[] = [];
  const started = performance.now();
  const sampling: SamplingOptions = pickSampling(options);
  for (const server of ranked) {
    const decoder = host.tokenizer.streamDecoder({ context: prompt });
    const matcher = new StopMatcher(options.stop ?? []);
    let produced = 0;
    try {
      const tokens = remoteGenerate(
        host.node.libp2p,
        server.record.peerId,
        { prompt, maxTokens: options.maxTokens, sampling, ...(options.stopTokens ? { stopTokens: options.stopTokens } : {}) },
        { signal: options.signal, idleTimeoutMs: options.idleTimeoutMs, addrs: (server.record.addrs ?? []).map((addr) => multiaddr(addr)) },
      );
      for await (const token of tokens) {
        produced++;
        const { emit, stopped } = matcher.push(decoder.push(token));
        yield { token, text: emit };
        if (stopped) return; // leaving the loop cancels the generation on the server
      }
      const rest = matcher.push(decoder.flush());
      const tail = rest.stopped ? rest.emit : rest.emit + matcher.flush();
      if (tail) yield { token: -1, text: tail };
      return;
    } catch (error) {
      if (options.signal?.aborted || produced > 0) throw error;
      failures.push(error);
      host.bans.ban(server.record.peerId, (error as Error)?.message ?? 'generate failed');
    }
  }
  throw new SwarmUnavailableError(`every whole-model server failed (${failures.length} tried)`, { failures, elapsedMs: performance.now() - started });
}

function pickSampling(options: WholeModelGenerateOptions): SamplingOptions {
  const keys = ['temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'penaltyLastN', 'frequencyPenalty', 'presencePenalty', 'seed'] as const;
  const given = options as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of keys) if (given[key] !== undefined) out[key] = given[key];
  return out as SamplingOptions;
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
