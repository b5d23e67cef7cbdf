/**
 * The generation loop, shared by local and swarm generation: prefill the prompt, then sample and decode one
 * token at a time, streaming text deltas. What computes the logits is behind `InferenceSession`, so the same loop
 * drives a local span, a whole-model server, or a chain of remote servers.
 */
import type { StreamDecoder, Tokenizer } from '../model/types.js';
import { createSampler, StopMatcher, type SamplingOptions } from './sampling.js';

/** A stateful sequence whose cache grows by the ids fed to it. */
export interface InferenceSession {
  /** Appends `ids` at the current position and returns the logits after the last one. */
  next(ids: readonly number[]): Promise<Float32Array>;
  close(): Promise<void>;
}

export interface GenerateOptions extends SamplingOptions {
  readonly maxTokens: number;
  /** Stop strings: generation ends before them and they are not emitted. */
  readonly stop?: readonly string[];
  /** Stop token ids; defaults to the tokenizer's EOS ids. */
  readonly stopTokens?: readonly number[];
  readonly signal?: AbortSignal;
}

export interface GenerationEvent {
  readonly token: number;
  /** Text completed by this token (may be empty while UTF-8 or a possible stop string is held back). */
  readonly text: string;
}

export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  /** Single-token forward passes after the prompt (decode tok/s = decodeSteps / decodeMs). */
  decodeSteps: number;
  prefillMs: number;
  decodeMs: number;
  finishReason: 'stop' | 'length' | 'abort';
}

/**
 * Streams tokens for `prompt`. The returned iterator yields one event per generated token, and its `stats` are
 * complete once iteration ends.
 */
export function generate(session: InferenceSession, tokenizer: Tokenizer, prompt: readonly number[], options: GenerateOptions) {
  const stats: GenerationStats = { promptTokens: prompt.length, generatedTokens: 0, decodeSteps: 0, prefillMs: 0, decodeMs: 0, finishReason: 'length' };
  async function* run(): AsyncGenerator<GenerationEvent> {
    const sampler = createSampler(options);
    const stopTokens = new Set(options.stopTokens ?? tokenizer.special.eos);
    const matcher = new StopMatcher(options.stop ?? []);
    const decoder: StreamDecoder = tokenizer.streamDecoder({ context: prompt });
    const history = [...prompt];
    let started = performance.now();
    let logits = await session.next(prompt);
    stats.prefillMs = performance.now() - started;
    started = performance.now();
    try {
      for (let i = 0; i < options.maxTokens; i++) {
        if (options.signal?.aborted) {
          stats.finishReason = 'abort';
          return;
        }
        const token = sampler.sample(logits, history);
        if (stopTokens.has(token)) {
          stats.finishReason = 'stop';
          break;
        }
        history.push(token);
        stats.generatedTokens++;
        const { emit, stopped } = matcher.push(decoder.push(token));
        yield { token, text: emit };
        if (stopped) {
          stats.finishReason = 'stop';
          return;
        }
        if (i + 1 < options.maxTokens) {
          logits = await session.next([token]);
          stats.decodeSteps++;
        }
      }
      const rest = matcher.push(decoder.flush());
      const tail = rest.stopped ? rest.emit : rest.emit + matcher.flush();
      if (tail) yield { token: -1, text: tail };
    } finally {
      stats.decodeMs = performance.now() - started;
    }
  }
  return Object.assign(run(), { stats });
}
