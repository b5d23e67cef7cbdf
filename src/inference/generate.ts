/**
 * The generation loop, the only one: prefill the prompt, then sample and decode one token at a time, streaming
 * text deltas. What computes the logits is behind `InferenceSession`, so the same loop drives the local model, a
 * chain of remote servers, and a whole-model server's own generations.
 */
import { DEFAULT_PREFILL_CHUNK_TOKENS } from '../engine/defaults.js';
import type { StreamDecoder, Tokenizer } from '../model/types.js';
import { PromptTooLongError } from './errors.js';
import type { InferenceSession, LanguageModel, ServerUsage } from './language-model.js';
import { createSampler, StopMatcher, type SamplingOptions } from './sampling/index.js';
import { resolveSpeculation, type SpeculationStats, type SpeculativeOptions } from './speculative.js';

export interface GenerateOptions extends SamplingOptions {
  readonly maxTokens: number;
  /** Stop strings: generation ends before them and they are not emitted. */
  readonly stop?: readonly string[];
  /** Stop token ids; defaults to the tokenizer's EOS ids. */
  readonly stopTokens?: readonly number[];
  /** Ends the generation with finishReason 'abort', also while a step is in flight. */
  readonly signal?: AbortSignal;
  /**
   * The prompt is fed in steps of at most this many tokens (default DEFAULT_PREFILL_CHUNK_TOKENS), each attending to
   * the ones before: no step builds attention over the whole prompt at once, a server's step cap is never exceeded,
   * and a swarm session replays the same chunks on failover.
   */
  readonly prefillChunkTokens?: number;
  /**
   * Speculative decoding (speculative.ts): proposals are verified k at a time in one step, and the output is the
   * one plain decoding gives (up to near-ties, see there). Greedy sampling only: with a random draw the loop decodes
   * one token at a time (as it does on a session without `nextRows`/`rewind`).
   */
  readonly speculative?: SpeculativeOptions;
}

export interface GenerationEvent {
  /** The sampled id; −1 for text released at the end (held-back UTF-8 or a possible stop string). */
  readonly token: number;
  /** Text completed by this token (may be empty while UTF-8 or a possible stop string is held back). */
  readonly text: string;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  /**
   * Forward passes after the prompt. Each gives one token's logits, or with speculation 1 + its accepted proposals'
   * (decode tok/s = (decodeSteps + speculation.accepted) / decodeMs).
   */
  decodeSteps: number;
  prefillMs: number;
  decodeMs: number;
  finishReason: FinishReason;
  /** Which server computed which blocks for how many tokens, when the session runs on servers. */
  servers?: ServerUsage[];
  /** Proposals and acceptances, when speculative decoding ran. */
  speculation?: SpeculationStats;
}

/** Events of one generation; `stats` is complete once iteration ends. */
export type GenerationStream = AsyncGenerator<GenerationEvent, void, undefined> & { readonly stats: GenerationStats };

export const emptyStats = (promptTokens = 0): GenerationStats => ({
  promptTokens,
  generatedTokens: 0,
  decodeSteps: 0,
  prefillMs: 0,
  decodeMs: 0,
  finishReason: 'length',
});

/**
 * Turns sampled ids into text deltas: UTF-8-safe streaming decode, filtered by stop strings. Shared by the loop
 * below and by generations whose tokens are sampled elsewhere (a whole-model server).
 */
export class TextStream {
  private readonly decoder: StreamDecoder | undefined;
  private readonly matcher: StopMatcher;

  constructor(tokenizer: Tokenizer | undefined, context: readonly number[], stop: readonly string[] = []) {
    this.decoder = tokenizer?.streamDecoder({ context });
    this.matcher = new StopMatcher(stop);
  }

  /** The text `token` completes; `stopped` once a stop string was met (the generation should end). */
  push(token: number): { emit: string; stopped: boolean } {
    return this.matcher.push(this.decoder?.push(token) ?? '');
  }

  /** Text still held back at the end of a generation that did not stop on a string. */
  finish(): string {
    const rest = this.matcher.push(this.decoder?.flush() ?? '');
    return rest.stopped ? rest.emit : rest.emit + this.matcher.flush();
  }
}

/** Token ids of a prompt: a string is encoded (BOS per `addBos`, default the tokenizer's); empty means BOS alone. */
export function promptIds(tokenizer: Tokenizer, prompt: string | readonly number[], addBos?: boolean): number[] {
  const ids = typeof prompt === 'string' ? tokenizer.encode(prompt, addBos === undefined ? undefined : { addBos }) : [...prompt];
  if (ids.length === 0) {
    if (tokenizer.special.bos === undefined) throw new RangeError('empty prompt, and this model has no BOS token');
    ids.push(tokenizer.special.bos);
  }
  return ids;
}

/**
 * Streams tokens for `prompt` through `session`. Without a tokenizer (a server that only streams ids) events carry
 * no text and stop strings do not apply. The session is left open.
 */
export function generate(session: InferenceSession, tokenizer: Tokenizer | undefined, prompt: readonly number[], options: GenerateOptions): GenerationStream {
  const stats = emptyStats(prompt.length);
  return Object.assign(loop(session, tokenizer, prompt, options, stats), { stats });
}

/** Prompt options of `generateText`/`generateFrom`. */
export interface PromptOptions extends GenerateOptions {
  /** Encode a text prompt with BOS (default: the tokenizer's setting). */
  readonly addBos?: boolean;
}

/**
 * Generates from `model`: encodes `prompt` (BOS alone for an empty one), opens a session sized prompt + maxTokens,
 * runs the loop, and closes the session.
 */
export function generateFrom(model: LanguageModel, prompt: string | readonly number[], options: PromptOptions): GenerationStream {
  const ids = promptIds(model.tokenizer, prompt, options.addBos);
  const stats = emptyStats(ids.length);
  async function* run(): AsyncGenerator<GenerationEvent, void, undefined> {
    const context = model.config.maxPositionEmbeddings;
    if (ids.length + options.maxTokens > context) throw new PromptTooLongError(ids.length, options.maxTokens, context);
    let session: InferenceSession;
    try {
      session = await model.openSession(ids.length + options.maxTokens, { signal: options.signal });
    } catch (error) {
      if (!options.signal?.aborted) throw error;
      stats.finishReason = 'abort';
      return;
    }
    try {
      yield* loop(session, model.tokenizer, ids, options, stats);
    } finally {
      await session.close();
    }
  }
  return Object.assign(run(), { stats });
}

/** The whole generated text of `prompt`. */
export async function generateText(model: LanguageModel, prompt: string | readonly number[], options: PromptOptions): Promise<string> {
  let text = '';
  for await (const event of generateFrom(model, prompt, options)) text += event.text;
  return text;
}

async function* loop(
  session: InferenceSession,
  tokenizer: Tokenizer | undefined,
  prompt: readonly number[],
  options: GenerateOptions,
  stats: GenerationStats,
): AsyncGenerator<GenerationEvent, void, undefined> {
  const sampler = createSampler(options);
  const stopTokens = new Set(options.stopTokens ?? tokenizer?.special.eos ?? []);
  const text = new TextStream(tokenizer, prompt, options.stop);
  const history = [...prompt];
  const aborted = () => options.signal?.aborted === true;
  // A step that fails because the caller aborted ends the generation like an abort between tokens.
  const guarded = async <T>(call: () => Promise<T>): Promise<T | undefined> => {
    if (aborted()) return undefined;
    try {
      const result = await call();
      return aborted() ? undefined : result;
    } catch (error) {
      if (aborted()) return undefined;
      throw error;
    }
  };
  const step = (ids: readonly number[], sampled: boolean) => guarded(() => session.next(ids, sampled ? { sampled } : undefined));
  const speculation = options.speculative ? resolveSpeculation(options.speculative) : undefined;
  const speculating = speculation !== undefined && sampler.greedy && session.nextRows !== undefined && session.rewind !== undefined;
  if (speculating) stats.speculation = { steps: 0, proposed: 0, accepted: 0 };
  let position = 0; // tokens fed to the session
  // Proposals fed after the last sampled token, each with the logits after it: the next samples either confirm them
  // (no step needed) or the session is rewound past them.
  let proposals: { id: number; logits: Float32Array }[] = [];
  let decodeStarted: number | undefined;
  try {
    if (aborted()) {
      stats.finishReason = 'abort';
      return;
    }
    const prefillStarted = performance.now();
    const chunk = options.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS;
    if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`prefillChunkTokens must be a positive integer, got ${chunk}`);
    let logits: Float32Array | undefined;
    for (let start = 0; start === 0 || start < prompt.length; start += chunk) {
      logits = await step(prompt.slice(start, start + chunk), false);
      if (!logits) break;
      position = Math.min(prompt.length, start + chunk);
    }
    stats.prefillMs = performance.now() - prefillStarted;
    decodeStarted = performance.now();
    while (stats.generatedTokens < options.maxTokens) {
      if (!logits) {
        stats.finishReason = 'abort';
        return;
      }
      const token = sampler.sample(logits, history);
      if (stopTokens.has(token)) {
        stats.finishReason = 'stop';
        break;
      }
      // The proposal fed after the previous token was this very token: its logits are already computed.
      const confirmed = proposals[0]?.id === token ? proposals.shift()! : undefined;
      if (confirmed) stats.speculation!.accepted++;
      else if (proposals.length > 0) {
        position -= proposals.length;
        proposals = [];
        await session.rewind!(position);
      }
      history.push(token);
      stats.generatedTokens++;
      const { emit, stopped } = text.push(token);
      yield { token, text: emit };
      if (stopped) {
        stats.finishReason = 'stop';
        return;
      }
      if (stats.generatedTokens === options.maxTokens) break;
      if (confirmed) {
        logits = confirmed.logits;
        continue;
      }
      // The last token is sampled, never fed, as in plain decoding: proposals stop one short of maxTokens.
      const limit = Math.min(speculation?.k ?? 0, options.maxTokens - stats.generatedTokens - 1);
      const guesses = speculating ? speculation.proposer.propose(history, limit).slice(0, limit) : [];
      if (guesses.length === 0) {
        logits = await step([token], true);
        position++;
      } else {
        const rows = await guarded(() => session.nextRows!([token, ...guesses], { sampled: true }));
        position += 1 + guesses.length;
        logits = rows?.[0];
        if (rows) proposals = guesses.map((id, i) => ({ id, logits: rows[i + 1]! }));
        stats.speculation!.steps++;
        stats.speculation!.proposed += guesses.length;
      }
      if (logits) stats.decodeSteps++;
    }
    if (!logits) {
      stats.finishReason = 'abort';
      return;
    }
    const tail = text.finish();
    if (tail) yield { token: -1, text: tail };
  } catch (error) {
    proposals = []; // a failed session is not rewound
    throw error;
  } finally {
    // Proposals fed but never sampled are forgotten: the session holds exactly what plain decoding would have fed.
    if (proposals.length > 0 && !aborted()) await session.rewind!(position - proposals.length);
    if (decodeStarted !== undefined) stats.decodeMs = performance.now() - decodeStarted;
    const servers = session.usage?.();
    if (servers) stats.servers = servers;
  }
}
