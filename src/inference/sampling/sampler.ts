/**
 * Token sampling over a logits vector.
 *
 * The pipeline of `Sampler.sample(logits, history)`, in order:
 *   1. penalties over the last `penaltyLastN` tokens of `history` (each distinct token once):
 *        repetition (llama.cpp / HF):  logit > 0 ? logit / r : logit · r
 *        frequency and presence (OpenAI): logit −= count · frequencyPenalty + presencePenalty
 *   2. greedy (temperature 0 or unset, or topK = 1): argmax, lowest id on ties. No random draw is used.
 *   3. otherwise: temperature → top-k → top-p → min-p → one weighted draw, the order of HF transformers' warpers.
 *        top-k keeps the k highest logits (ties: lower id first);
 *        top-p keeps the shortest prefix of the sorted distribution (after top-k) with mass ≥ p;
 *        min-p then keeps the tokens with p ≥ minP · p_max (ratios to p_max survive renormalisation).
 * The caller's logits are never mutated. NaN and −Infinity logits are never chosen; +Infinity logits win outright
 * (greedy: the lowest such id; sampled: uniformly among them).
 *
 * Cost for a 128k vocabulary: one O(V) pass for greedy (plus a 512 KiB copy when penalties are on); with top-k, a
 * bounded heap (O(V log k) worst case, ≈O(V) in practice) and no full sort; top-p without top-k finds the exact
 * nucleus with two mass histograms over the weights' float bits and sorts only exact near-ties, so every path is
 * O(V). Probabilities use a fast e^x (relative error < 2e-7). Working buffers are allocated once per vocabulary
 * size and shared by all samplers in the process (sampling is synchronous), so steady-state calls allocate almost
 * nothing.
 *
 * Seeded samplers are deterministic (xoshiro128** seeded via splitmix32; Math.random is never used). Unseeded
 * ones draw a random 32-bit seed from crypto and expose it as `sampler.seed`, so any run can be replayed.
 */
import { NoValidTokenError, InvalidSamplingOptionsError } from '../errors.js';
import { argmax, expNonPositive, nucleus, scratchFor, selectTopK, type Scratch } from './kernels.js';
import { applyPenalties } from './penalties.js';
import { createRandom, randomSeed, type Random } from './random.js';

export interface SamplingOptions {
  /** 0 or unset: greedy. Otherwise > 0 (finite). */
  readonly temperature?: number;
  /** Keep the k most likely tokens. 0 or unset: off. topK = 1 is greedy at any temperature. */
  readonly topK?: number;
  /** Nucleus mass in [0, 1]; 0 keeps only the most likely token. 1 or unset: off. */
  readonly topP?: number;
  /** In [0, 1]: drop tokens with p < minP · p_max. 0 or unset: off. */
  readonly minP?: number;
  /** > 0; 1 or unset: off. Typical 1.1. */
  readonly repetitionPenalty?: number;
  /** Window of history the penalties look at. Default 64; 0 disables penalties; −1 means the whole history. */
  readonly penaltyLastN?: number;
  /** Subtracted once per occurrence in the window. 0 or unset: off. */
  readonly frequencyPenalty?: number;
  /** Subtracted once if present in the window. 0 or unset: off. */
  readonly presencePenalty?: number;
  /** Safe integer. Same seed, options and inputs → same tokens. Unset: random seed. */
  readonly seed?: number;
}

export interface Sampler {
  /** The seed in use (given, or drawn at random when none was given). */
  readonly seed: number;
  /** True when every call is an argmax (temperature 0 / unset, or topK 1). */
  readonly greedy: boolean;
  /**
   * Picks the next token id from `logits` (one row, length = vocabulary size). `history` is the token ids so far
   * (prompt and generated), used only by penalties; ids outside [0, vocab) are ignored. Throws NoValidTokenError
   * when every logit is NaN or −Infinity (after filtering).
   */
  sample(logits: Float32Array, history?: readonly number[]): number;
}

export const DEFAULT_PENALTY_LAST_N = 64;

interface Resolved {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  penaltyLastN: number;
  frequencyPenalty: number;
  presencePenalty: number;
}

function resolveOptions(options: SamplingOptions): Resolved {
  const num = (name: keyof SamplingOptions, fallback: number, ok: (v: number) => boolean, rule: string): number => {
    const v = options[name];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !ok(v)) throw new InvalidSamplingOptionsError(`${name} must be ${rule}, got ${v}`);
    return v;
  };
  return {
    temperature: num('temperature', 0, (v) => Number.isFinite(v) && v >= 0, 'a finite number ≥ 0'),
    topK: num('topK', 0, (v) => Number.isSafeInteger(v) && v >= 0, 'an integer ≥ 0'),
    topP: num('topP', 1, (v) => v >= 0 && v <= 1, 'in [0, 1]'),
    minP: num('minP', 0, (v) => v >= 0 && v <= 1, 'in [0, 1]'),
    repetitionPenalty: num('repetitionPenalty', 1, (v) => Number.isFinite(v) && v > 0, 'a finite number > 0'),
    penaltyLastN: num('penaltyLastN', DEFAULT_PENALTY_LAST_N, (v) => Number.isSafeInteger(v) && v >= -1, 'an integer ≥ −1'),
    frequencyPenalty: num('frequencyPenalty', 0, Number.isFinite, 'finite'),
    presencePenalty: num('presencePenalty', 0, Number.isFinite, 'finite'),
  };
}

/** Creates a sampler. Options are validated up front (InvalidSamplingOptionsError). */
export function createSampler(options: SamplingOptions = {}): Sampler {
  return new LogitSampler(options);
}

class LogitSampler implements Sampler {
  readonly seed: number;
  readonly greedy: boolean;
  private readonly o: Resolved;
  private readonly rng: Random;
  private readonly penalized: boolean;
  private scratch: Scratch | undefined;

  constructor(options: SamplingOptions) {
    this.o = resolveOptions(options);
    this.seed = options.seed ?? randomSeed();
    this.rng = createRandom(this.seed);
    this.greedy = this.o.temperature === 0 || this.o.topK === 1;
    this.penalized =
      this.o.penaltyLastN !== 0 &&
      (this.o.repetitionPenalty !== 1 || this.o.frequencyPenalty !== 0 || this.o.presencePenalty !== 0);
  }

  sample(logits: Float32Array, history: readonly number[] = []): number {
    const vocab = logits.length;
    if (vocab === 0) throw new NoValidTokenError('cannot sample from empty logits');
    const scratch = (this.scratch = this.scratch?.vocab === vocab ? this.scratch : scratchFor(vocab));
    const src = this.penalized && history.length > 0 ? applyPenalties(scratch, logits, history, this.o) : logits;

    if (this.greedy) {
      const id = argmax(src);
      if (id < 0) throw new NoValidTokenError('every logit is NaN or −Infinity');
      return id;
    }
    const { temperature, topK, topP, minP } = this.o;
    const weights = scratch.weights;

    // Candidates: the top k (ids[0..n), best first), or every token (position = id; NaN and −Infinity get weight 0).
    let ids: Int32Array;
    let n: number;
    let sorted: boolean;
    let max: number;
    if (topK > 0 && topK < vocab) {
      ids = scratch.ids;
      n = selectTopK(scratch, src, topK);
      sorted = true;
      max = n > 0 ? src[ids[0]!]! : -Infinity;
    } else {
      ids = scratch.identity;
      n = vocab;
      sorted = false;
      max = src[argmax(src)] ?? -Infinity;
    }
    if (n === 0 || max === -Infinity) throw new NoValidTokenError('every logit is NaN or −Infinity');

    // Unnormalised probabilities relative to the best token (whose weight is 1).
    const invT = 1 / temperature;
    let total = 0;
    if (max === Infinity) {
      for (let j = 0; j < n; j++) total += weights[j] = src[ids[j]!] === Infinity ? 1 : 0;
    } else if (sorted) {
      for (let j = 0; j < n; j++) {
        const w = expNonPositive((src[ids[j]!]! - max) * invT);
        weights[j] = w;
        total += w;
      }
    } else {
      for (let j = 0; j < n; j++) {
        const w = expNonPositive((src[j]! - max) * invT); // NaN and −Infinity → 0
        weights[j] = w;
        total += w;
      }
    }

    // `keep` lists candidate positions (indices into ids/weights) still in play.
    let keep: Int32Array | undefined; // undefined: all of 0..n-1
    let kept = n;
    if (topP < 1) {
      if (sorted) {
        const target = topP * total;
        let cum = 0;
        let j = 0;
        while (j < n) {
          cum += weights[j]!;
          j++;
          if (cum >= target) break;
        }
        kept = j;
      } else {
        keep = scratch.selected;
        kept = nucleus(scratch, ids, n, topP);
      }
    }
    if (minP > 0) {
      // p_i / p_max = weight_i, since the best token has weight 1.
      let m = 0;
      if (keep) {
        for (let j = 0; j < kept; j++) {
          const pos = keep[j]!;
          if (weights[pos]! >= minP) keep[m++] = pos;
        }
      } else {
        keep = scratch.selected;
        for (let j = 0; j < kept; j++) if (weights[j]! >= minP) keep[m++] = j;
      }
      kept = m;
    }

    // One weighted draw over the kept candidates.
    let mass = 0;
    if (keep) for (let j = 0; j < kept; j++) mass += weights[keep[j]!]!;
    else for (let j = 0; j < kept; j++) mass += weights[j]!;
    const r = this.rng.nextFloat() * mass;
    let cum = 0;
    let last = -1;
    for (let j = 0; j < kept; j++) {
      const pos = keep ? keep[j]! : j;
      const w = weights[pos]!;
      if (w <= 0) continue;
      cum += w;
      last = pos;
      if (r < cum) return ids[pos]!;
    }
    if (last < 0) throw new NoValidTokenError('no token has positive probability');
    return ids[last]!; // rounding: r landed on the total
  }

}
