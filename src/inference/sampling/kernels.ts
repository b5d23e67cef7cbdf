/** The sampler's O(V) kernels over shared working buffers: argmax, top-k heap, top-p histograms, fast e^x. */

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

/**
 * Per-vocabulary working buffers, shared by every sampler of that vocabulary size. Sampling is synchronous and
 * never re-entrant, so one set serves all sessions of a process (about 3.5 MiB at a 128k vocabulary) instead of
 * one per sampler.
 */
export class Scratch {
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

export function scratchFor(vocab: number): Scratch {
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
export function selectTopK(scratch: Scratch, src: Float32Array, k: number): number {
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
export function nucleus(scratch: Scratch, ids: Int32Array, n: number, topP: number): number {
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
