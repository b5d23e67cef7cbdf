/**
 * Token sampling over a logits vector, and stop-string handling for streamed text.
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
import { CorollaError } from '../errors.js';

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

/** Invalid sampling options. */
export class InvalidSamplingOptionsError extends CorollaError {
  override readonly name = 'InvalidSamplingOptionsError';
  constructor(message: string) {
    super('INVALID_SAMPLING_OPTIONS', `invalid sampling options: ${message}`);
  }
}

/** No token can be sampled: the logits are empty, or all NaN / −Infinity. */
export class NoValidTokenError extends CorollaError {
  override readonly name = 'NoValidTokenError';
  constructor(message: string) {
    super('SAMPLING_NO_VALID_TOKEN', message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// PRNG

/** A seeded 32-bit PRNG: xoshiro128** with its state filled by splitmix32. */
export interface Random {
  /** Uniform unsigned 32-bit integer. */
  nextUint32(): number;
  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number;
}

/** Creates a deterministic PRNG from a safe-integer seed (negative and > 2^32 seeds are mixed, not truncated). */
export function createRandom(seed: number): Random {
  if (!Number.isSafeInteger(seed)) throw new InvalidSamplingOptionsError(`seed must be a safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0;
  let sm = (lo ^ Math.imul(hi, 0x9e3779b1)) | 0;
  const splitmix = (): number => {
    sm = (sm + 0x9e3779b9) | 0;
    let t = sm ^ (sm >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
  // Mix `hi` into the stream too so seeds differing only in high bits diverge.
  let s0 = splitmix() ^ hi;
  let s1 = splitmix();
  let s2 = splitmix();
  let s3 = splitmix();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  const nextUint32 = (): number => {
    const x = Math.imul(s1, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    return result;
  };
  return { nextUint32, nextFloat: () => nextUint32() / 0x100000000 };
}

function randomSeed(): number {
  return globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Sampler

/** Argmax with the lowest id on ties; NaN never wins. Returns −1 when no element is > −Infinity. */
export function argmax(values: Float32Array): number {
  let best = -Infinity;
  let bestId = -1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > best) {
      best = v;
      bestId = i;
    }
  }
  return bestId;
}

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
    const src = this.penalized && history.length > 0 ? this.applyPenalties(scratch, logits, history) : logits;

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

  /** Copies logits into the work buffer and applies the penalties of the history window. */
  private applyPenalties(scratch: Scratch, logits: Float32Array, history: readonly number[]): Float32Array {
    const { repetitionPenalty: rep, frequencyPenalty: freq, presencePenalty: presence, penaltyLastN } = this.o;
    const vocab = scratch.vocab;
    const window = penaltyLastN < 0 ? history.length : Math.min(penaltyLastN, history.length);
    if (scratch.touched.length < window) scratch.touched = new Int32Array(Math.max(window, 2 * scratch.touched.length));
    const counts = scratch.counts;
    const touched = scratch.touched;
    let distinct = 0;
    for (let j = history.length - window; j < history.length; j++) {
      const t = history[j]!;
      if (!(Number.isInteger(t) && t >= 0 && t < vocab)) continue;
      if (counts[t]++ === 0) touched[distinct++] = t;
    }
    const work = scratch.work;
    work.set(logits);
    for (let j = 0; j < distinct; j++) {
      const t = touched[j]!;
      let v = work[t]!;
      if (rep !== 1) v = v > 0 ? v / rep : v * rep;
      work[t] = v - counts[t]! * freq - presence;
      counts[t] = 0;
    }
    return work;
  }

}

/**
 * Per-vocabulary working buffers, shared by every sampler of that vocabulary size. Sampling is synchronous and
 * never re-entrant, so one set serves all sessions of a process (about 3.5 MiB at a 128k vocabulary) instead of
 * one per sampler.
 */
class Scratch {
  readonly work: Float32Array;
  readonly counts: Uint32Array;
  touched = new Int32Array(64);
  /** Top-k candidate ids. */
  readonly ids: Int32Array;
  /** ids[i] = i, for the all-tokens path. */
  readonly identity: Int32Array;
  readonly weights: Float32Array;
  readonly weightBits: Uint32Array;
  readonly selected: Int32Array;
  readonly members: Int32Array;
  heapValues = new Float32Array(64);
  readonly coarseMass = new Float64Array(1 << 10);
  readonly fineMass = new Float64Array(1 << 12);

  constructor(readonly vocab: number) {
    this.work = new Float32Array(vocab);
    this.counts = new Uint32Array(vocab);
    this.ids = new Int32Array(vocab);
    this.identity = new Int32Array(vocab);
    for (let i = 0; i < vocab; i++) this.identity[i] = i;
    this.weights = new Float32Array(vocab);
    this.weightBits = new Uint32Array(this.weights.buffer);
    this.selected = new Int32Array(vocab);
    this.members = new Int32Array(vocab);
  }
}

const scratches = new Map<number, Scratch>();

function scratchFor(vocab: number): Scratch {
  let scratch = scratches.get(vocab);
  if (!scratch) {
    if (scratches.size >= 4) scratches.delete(scratches.keys().next().value!);
    scratch = new Scratch(vocab);
    scratches.set(vocab, scratch);
  }
  return scratch;
}

/**
 * Puts the k best tokens (logit desc, id asc; NaN and −Infinity excluded) into scratch.ids[0..m), best first, and
 * returns m ≤ k. A bounded min-heap whose root is the worst kept token: most tokens fail one comparison against it.
 */
function selectTopK(scratch: Scratch, src: Float32Array, k: number): number {
  if (scratch.heapValues.length < k) scratch.heapValues = new Float32Array(k);
  const heap = scratch.ids;
  const hv = scratch.heapValues;
  let size = 0;
  // The heap keeps its worst element at the root: a parent is never better than its children.
  const siftDown = (): void => {
    let i = 0;
    const id = heap[0]!;
    const v = hv[0]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      let c = l;
      const r = l + 1;
      if (r < size && (hv[r]! < hv[l]! || (hv[r] === hv[l] && heap[r]! > heap[l]!))) c = r;
      // Stop when the node is worse than its worst child.
      if (v < hv[c]! || (v === hv[c] && id > heap[c]!)) break;
      heap[i] = heap[c]!;
      hv[i] = hv[c]!;
      i = c;
    }
    heap[i] = id;
    hv[i] = v;
  };
  const vocab = src.length;
  let i = 0;
  for (; i < vocab && size < k; i++) {
    const v = src[i]!;
    if (!(v > -Infinity)) continue;
    // Sift up. The new id is the largest so far, so on equal values the new element is the worse one.
    let p = size++;
    while (p > 0) {
      const parent = (p - 1) >> 1;
      if (hv[parent]! < v) break;
      heap[p] = heap[parent]!;
      hv[p] = hv[parent]!;
      p = parent;
    }
    heap[p] = i;
    hv[p] = v;
  }
  for (; i < vocab; i++) {
    const v = src[i]!;
    // Ids increase, so a tie with the root never displaces it.
    if (v > hv[0]!) {
      heap[0] = i;
      hv[0] = v;
      siftDown();
    }
  }
  // Pop the worst repeatedly into the tail: ids[0..m) ends best first.
  const m = size;
  while (size > 1) {
    const worstId = heap[0]!;
    const worstV = hv[0]!;
    size--;
    heap[0] = heap[size]!;
    hv[0] = hv[size]!;
    siftDown();
    heap[size] = worstId;
    hv[size] = worstV;
  }
  return m;
}

/**
 * Top-p over candidates in id order: fills scratch.selected with the nucleus (positions into ids/weights) and
 * returns its size. The nucleus is exactly the shortest prefix of the candidates sorted by (weight desc, id asc)
 * with mass ≥ p · total, found without sorting them all: positive f32 bit patterns order like their values, so a
 * mass histogram over the top 12 bits, then one over the next 12 bits of the single bucket where the cumulative
 * mass crosses the target, leaves only the tokens of one fine bucket (weights equal in 24 bits) to sort.
 */
function nucleus(scratch: Scratch, ids: Int32Array, n: number, topP: number): number {
  const weights = scratch.weights;
  const bits = scratch.weightBits;
  const sel = scratch.selected;
  const members = scratch.members;
  const coarse = scratch.coarseMass;
  const fine = scratch.fineMass;
  coarse.fill(0);
  fine.fill(0);
  // Weights lie in [0, 1], so bits >>> 20 ≤ 0x3f8.
  for (let j = 0; j < n; j++) coarse[bits[j]! >>> 20] += weights[j]!;
  let total = 0;
  for (let key = coarse.length - 1; key >= 0; key--) total += coarse[key]!;
  const target = topP * total;
  // Coarse bucket where the running mass (high to low) reaches the target; `above` is the mass before it.
  let above = 0;
  let c = -1;
  for (let key = coarse.length - 1; key >= 0; key--) {
    const m = coarse[key]!;
    if (m === 0) continue;
    c = key;
    if (above + m >= target) break;
    above += m;
  }
  if (c < 0) return 0;
  let kept = 0;
  let count = 0;
  for (let j = 0; j < n; j++) {
    const key = bits[j]! >>> 20;
    if (key > c) sel[kept++] = j;
    else if (key === c) {
      members[count++] = j;
      fine[(bits[j]! >>> 8) & 0xfff] += weights[j]!;
    }
  }
  let c2 = -1;
  let reached = false;
  for (let key = fine.length - 1; key >= 0; key--) {
    const m = fine[key]!;
    if (m === 0) continue;
    c2 = key;
    if (above + m >= target) {
      reached = true;
      break;
    }
    above += m;
  }
  // Rounding (the fine sums fall a hair short of the coarse one): keep the whole last bucket.
  if (!reached && c2 >= 0) above = -Infinity;
  let tied = 0;
  for (let i = 0; i < count; i++) {
    const j = members[i]!;
    const key = (bits[j]! >>> 8) & 0xfff;
    if (key > c2) sel[kept++] = j;
    else if (key === c2) members[tied++] = j; // compacting in place: tied ≤ i
  }
  const last = members.subarray(0, tied);
  if (tied > 1) last.sort((a, b) => bits[b]! - bits[a]! || ids[a]! - ids[b]!);
  let cum = above;
  for (let i = 0; i < tied; i++) {
    const j = last[i]!;
    sel[kept++] = j;
    cum += weights[j]!;
    if (cum >= target) break;
  }
  return kept;
}

const POW2_NEG = (() => {
  const table = new Float64Array(1076);
  for (let i = 0; i < table.length; i++) table[i] = 2 ** -i;
  return table;
})();

/**
 * e^x for x ≤ 0 (NaN → 0), relative error < 2e-7: x·log2(e) = k + f with k an integer and |f| ≤ 1/2, then
 * 2^k from a table and e^(f·ln 2) from a degree-7 Taylor polynomial. About 2× faster than Math.exp here, and
 * deterministic on every platform. For x > 0 the result is not e^x.
 */
export function expNonPositive(x: number): number {
  const y = x * Math.LOG2E;
  if (!(y > -1075)) return 0;
  const k = (y - 0.5) | 0; // round(y) for y ≤ 0, so |y − k| ≤ 1/2
  const t = (y - k) * Math.LN2;
  const p =
    1 +
    t *
      (1 +
        t *
          (0.5 +
            t *
              (0.16666666666666666 +
                t * (0.041666666666666664 + t * (0.008333333333333333 + t * (0.001388888888888889 + t * 0.0001984126984126984))))));
  return p * POW2_NEG[-k]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Stop strings and stop tokens

/** True when `id` is one of `stopTokens`. */
export function isStopToken(id: number, stopTokens: ReadonlySet<number> | readonly number[]): boolean {
  return stopTokens instanceof Set ? stopTokens.has(id) : (stopTokens as readonly number[]).includes(id);
}

export interface StopResult {
  /** Text safe to show now: never contains (a part of) a stop string. */
  readonly emit: string;
  /** True once a stop string has been seen; the stop string and everything after it are dropped. */
  readonly stopped: boolean;
}

/**
 * Filters streamed text deltas against stop strings. Text that could be the start of a stop string is held back
 * until the next delta settles it, so a stop string is never emitted, even when it arrives split across deltas.
 * At the end of a generation that did not stop on a string, call `flush()` to release the held-back text.
 */
export class StopMatcher {
  private readonly stops: readonly string[];
  private readonly stopTokens: ReadonlySet<number>;
  private held = '';
  private done = false;
  private hit: string | undefined;

  constructor(stopStrings: readonly string[] = [], stopTokens: Iterable<number> = []) {
    this.stops = [...new Set(stopStrings.filter((s) => typeof s === 'string' && s.length > 0))];
    this.stopTokens = new Set(stopTokens);
  }

  /** True once a stop string was matched. */
  get stopped(): boolean {
    return this.done;
  }

  /** The stop string that ended the text, if any. */
  get matched(): string | undefined {
    return this.hit;
  }

  /** Text currently held back. */
  get pending(): string {
    return this.held;
  }

  /** True when `id` is one of this matcher's stop tokens. */
  isStopToken(id: number): boolean {
    return this.stopTokens.has(id);
  }

  /** Consumes one text delta. */
  push(delta: string): StopResult {
    if (this.done) return { emit: '', stopped: true };
    const text = this.held + delta;
    if (this.stops.length === 0) {
      this.held = '';
      return { emit: text, stopped: false };
    }
    // Earliest occurrence of any stop string.
    let at = -1;
    for (const stop of this.stops) {
      const i = text.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at || (i === at && stop.length > this.hit!.length))) {
        at = i;
        this.hit = stop;
      }
    }
    if (at >= 0) {
      this.done = true;
      this.held = '';
      return { emit: text.slice(0, at), stopped: true };
    }
    // Hold back the longest suffix that is a proper prefix of some stop string.
    let hold = 0;
    for (const stop of this.stops) {
      const maxLen = Math.min(stop.length - 1, text.length);
      for (let len = maxLen; len > hold; len--) {
        if (text.endsWith(stop.slice(0, len))) {
          hold = len;
          break;
        }
      }
    }
    this.held = hold > 0 ? text.slice(text.length - hold) : '';
    return { emit: hold > 0 ? text.slice(0, text.length - hold) : text, stopped: false };
  }

  /** Ends the stream: returns the held-back text (empty after a stop). */
  flush(): string {
    const rest = this.done ? '' : this.held;
    this.held = '';
    return rest;
  }
}
