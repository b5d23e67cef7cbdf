/**
 * Speculative decoding: a proposer guesses the next few tokens, one step verifies them all (each hop of a swarm
 * runs the guesses as one multi-token step, the LM head scores every row), and the generation loop keeps the
 * prefix the sampler agrees with. On a network every step pays every hop's latency, so tokens per step is what
 * speeds it up.
 *
 * The proposer here is prompt lookup (n-gram lookup): the longest recent suffix of the text that occurred before
 * predicts that what followed it then follows it now. It costs no model and helps where text repeats (code,
 * summaries, quoting the prompt, small story models). Any other `Proposer` (a small draft model) plugs in the same
 * way.
 *
 * Exactness: a verification step is a multi-token step, which rounds differently from single-token steps (logits
 * differ by about 2e-5 on stories260K). Greedy output equals plain decoding's unless the two best logits of some
 * step are that close; the tests (stories260K, a generated model, 1 and 3 servers, a failover) never met one.
 * Sampling with a temperature decodes without speculation (generate.ts), so seeded runs stay reproducible.
 */
import { DEFAULT_SPECULATIVE_MAX_NGRAM, DEFAULT_SPECULATIVE_TOKENS } from './defaults.js';

/** Guesses the tokens that follow `history`. */
export interface Proposer {
  /** Up to `limit` ids likely to follow `history` (prompt and generated so far); none when it has no guess. */
  propose(history: readonly number[], limit: number): number[];
}

export interface SpeculativeOptions {
  /** 'ngram' (prompt lookup over the prompt and the generated text) or a proposer of one's own. */
  readonly proposer: 'ngram' | Proposer;
  /** Most tokens proposed per step (default DEFAULT_SPECULATIVE_TOKENS). */
  readonly k?: number;
  /** Longest suffix n-gram the 'ngram' proposer looks up (default DEFAULT_SPECULATIVE_MAX_NGRAM); it tries shorter ones down to 1. */
  readonly maxNgram?: number;
}

/** Counts of one generation's speculation. */
export interface SpeculationStats {
  /** Verification steps (each one forward pass over the last token and its proposals). */
  steps: number;
  /** Tokens proposed, and how many of them the sampler accepted. */
  proposed: number;
  accepted: number;
}

/** Validated settings: the proposer and k. */
export interface Speculation {
  readonly proposer: Proposer;
  readonly k: number;
}

export function resolveSpeculation(options: SpeculativeOptions): Speculation {
  const k = options.k ?? DEFAULT_SPECULATIVE_TOKENS;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`speculative k must be a positive integer, got ${k}`);
  if (options.proposer === 'ngram') return { proposer: new NgramProposer(options.maxNgram), k };
  if (typeof options.proposer?.propose !== 'function') throw new RangeError(`speculative proposer must be 'ngram' or a Proposer`);
  return { proposer: options.proposer, k };
}

/**
 * Prompt-lookup decoding: finds the latest earlier occurrence of the history's last n tokens (n from maxNgram down
 * to 1) and proposes the tokens that followed it. Scans backwards from the end, so the match nearest in the text
 * wins; O(history · n) per call, small next to one forward pass.
 */
export class NgramProposer implements Proposer {
  readonly maxNgram: number;

  constructor(maxNgram = DEFAULT_SPECULATIVE_MAX_NGRAM) {
    if (!Number.isInteger(maxNgram) || maxNgram < 1) throw new RangeError(`maxNgram must be a positive integer, got ${maxNgram}`);
    this.maxNgram = maxNgram;
  }

  propose(history: readonly number[], limit: number): number[] {
    const end = history.length;
    if (limit < 1) return [];
    for (let n = Math.min(this.maxNgram, end - 1); n >= 1; n--) {
      // an earlier n-gram ending at `at` (exclusive) with at least one token after it
      for (let at = end - 1; at >= n; at--) {
        let same = true;
        for (let j = 1; j <= n && same; j++) same = history[at - j] === history[end - j];
        if (same) return history.slice(at, Math.min(end, at + limit));
      }
    }
    return [];
  }
}
