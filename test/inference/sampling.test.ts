// runs alone: measures time (vitest.config.ts)
import { describe, expect, it } from 'vitest';
import { CorollaError } from '../../src/errors.js';
import {
  InvalidSamplingOptionsError,
  NoValidTokenError,
  StopMatcher,
  argmax,
  createRandom,
  createSampler,
  expNonPositive,
  isStopToken,
  type SamplingOptions,
} from '../../src/inference/sampling/index.js';

function randomLogits(vocab: number, seed: number, scale = 4): Float32Array {
  const rng = createRandom(seed);
  const out = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) out[i] = (rng.nextFloat() * 2 - 1) * scale;
  return out;
}

function logitsFromProbs(probs: number[]): Float32Array {
  return Float32Array.from(probs.map((p) => (p > 0 ? Math.log(p) : -Infinity)));
}

function histogram(options: SamplingOptions, logits: Float32Array, draws: number, history: number[] = []): Map<number, number> {
  const sampler = createSampler(options);
  const counts = new Map<number, number>();
  for (let i = 0; i < draws; i++) {
    const id = sampler.sample(logits, history);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Reference pipeline with full sorts: temperature → top-k → top-p → min-p; returns the kept distribution. */
function referenceDistribution(logits: Float32Array, o: SamplingOptions): Map<number, number> {
  const t = o.temperature!;
  let order = [...logits.keys()].filter((i) => logits[i]! > -Infinity);
  order.sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (o.topK && o.topK > 0) order = order.slice(0, o.topK);
  const max = logits[order[0]!]!;
  const w = order.map((i) => Math.exp((logits[i]! - max) / t));
  const total = w.reduce((a, b) => a + b, 0);
  let keep = order.length;
  if (o.topP !== undefined && o.topP < 1) {
    let cum = 0;
    for (let j = 0; j < order.length; j++) {
      cum += w[j]!;
      if (cum >= o.topP * total) {
        keep = j + 1;
        break;
      }
    }
  }
  const kept: [number, number][] = [];
  for (let j = 0; j < keep; j++) if (!o.minP || w[j]! >= o.minP) kept.push([order[j]!, w[j]!]);
  const mass = kept.reduce((a, [, x]) => a + x, 0);
  return new Map(kept.map(([id, x]) => [id, x / mass]));
}

describe('greedy', () => {
  it('is argmax with the lowest id on ties, ignoring NaN', () => {
    const sampler = createSampler({});
    expect(sampler.greedy).toBe(true);
    expect(sampler.sample(Float32Array.from([0.1, 3, -2, 3, 1]))).toBe(1);
    expect(sampler.sample(Float32Array.from([NaN, -1, NaN, -0.5]))).toBe(3);
    expect(sampler.sample(Float32Array.from([-Infinity, -Infinity, 5]))).toBe(2);
    expect(sampler.sample(Float32Array.from([1, Infinity, Infinity]))).toBe(1);
    expect(createSampler({ temperature: 0 }).sample(Float32Array.from([2, 7, 7]))).toBe(1);
    const big = randomLogits(128_256, 7);
    let ref = 0;
    for (let i = 1; i < big.length; i++) if (big[i]! > big[ref]!) ref = i;
    expect(sampler.sample(big)).toBe(ref);
    expect(argmax(big)).toBe(ref);
  });

  it('throws a typed error when nothing can be chosen', () => {
    const sampler = createSampler({});
    expect(() => sampler.sample(new Float32Array(0))).toThrow(NoValidTokenError);
    expect(() => sampler.sample(Float32Array.from([NaN, -Infinity]))).toThrow(NoValidTokenError);
    const hot = createSampler({ temperature: 1, topK: 5, topP: 0.9, seed: 1 });
    expect(() => hot.sample(Float32Array.from([NaN, NaN, -Infinity]))).toThrow(NoValidTokenError);
    expect(() => createSampler({ temperature: 1, seed: 1 }).sample(Float32Array.from([NaN]))).toThrow(CorollaError);
  });

  it('top-k = 1 equals greedy at any temperature', () => {
    const greedy = createSampler({});
    for (const temperature of [0.01, 0.7, 1, 3, 100]) {
      const sampler = createSampler({ temperature, topK: 1, seed: 5 });
      expect(sampler.greedy).toBe(true);
      for (let s = 0; s < 20; s++) {
        const logits = randomLogits(1000, s);
        logits[s * 10] = logits[s * 10 + 3] = 10; // a tie at the top
        expect(sampler.sample(logits)).toBe(greedy.sample(logits));
        expect(sampler.sample(logits)).toBe(s * 10);
      }
    }
  });
});

describe('seeded sampling', () => {
  const logits = randomLogits(5000, 3, 3);
  const run = (seed: number, options: SamplingOptions = {}) => {
    const sampler = createSampler({ temperature: 1, seed, ...options });
    return Array.from({ length: 200 }, () => sampler.sample(logits));
  };

  it('same seed → same sequence; different seed → different sequence', () => {
    for (const extra of [{}, { topK: 50 }, { topP: 0.9 }, { minP: 0.05 }, { topK: 100, topP: 0.8, minP: 0.01 }]) {
      expect(run(42, extra)).toEqual(run(42, extra));
      expect(run(42, extra)).not.toEqual(run(43, extra));
    }
    expect(run(2 ** 40)).not.toEqual(run(2 ** 40 + 2 ** 33)); // high bits matter
    expect(run(-1)).toEqual(run(-1));
  });

  it('an unseeded sampler draws and exposes a seed that replays it', () => {
    const a = createSampler({ temperature: 1 });
    const seqA = Array.from({ length: 100 }, () => a.sample(logits));
    const b = createSampler({ temperature: 1, seed: a.seed });
    expect(Array.from({ length: 100 }, () => b.sample(logits))).toEqual(seqA);
  });

  it('createRandom is uniform enough', () => {
    const rng = createRandom(123);
    let sum = 0;
    const buckets = new Array(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = rng.nextFloat();
      if (!(x >= 0 && x < 1)) outside++;
      sum += x;
      buckets[Math.floor(x * 10)]++;
    }
    expect(outside).toBe(0);
    expect(Math.abs(sum / 100_000 - 0.5)).toBeLessThan(0.01);
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });
});

describe('filters restrict the support', () => {
  it('top-k only hits the k best tokens, and all of them', () => {
    const logits = randomLogits(2000, 11);
    const top = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!).slice(0, 5);
    const counts = histogram({ temperature: 2, topK: 5, seed: 1 }, logits, 5000);
    expect(new Set(counts.keys())).toEqual(new Set(top));
  });

  it('top-p keeps the smallest nucleus', () => {
    const logits = logitsFromProbs([0.05, 0.5, 0.1, 0.3, 0.05]);
    expect(new Set(histogram({ temperature: 1, topP: 0.75, seed: 2 }, logits, 4000).keys())).toEqual(new Set([1, 3]));
    expect(new Set(histogram({ temperature: 1, topP: 0.85, seed: 2 }, logits, 4000).keys())).toEqual(new Set([1, 3, 2]));
    expect(new Set(histogram({ temperature: 1, topP: 0.4, seed: 2 }, logits, 1000).keys())).toEqual(new Set([1]));
    expect(new Set(histogram({ temperature: 1, topP: 0, seed: 2 }, logits, 200).keys())).toEqual(new Set([1]));
    expect(new Set(histogram({ temperature: 1, topK: 3, topP: 0, seed: 2 }, logits, 200).keys())).toEqual(new Set([1]));
  });

  it('breaks ties by lower id in top-k and top-p', () => {
    // Quantised logits: many exact ties. The support of top-k at a huge temperature is exactly the reference top-k.
    const logits = randomLogits(1000, 21).map((x) => Math.round(x * 2) / 2);
    const order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]! || a - b);
    for (const k of [2, 7, 25, 50]) {
      const support = new Set(histogram({ temperature: 1e6, topK: k, seed: k }, logits, 3000).keys());
      expect(support).toEqual(new Set(order.slice(0, k)));
    }
    const flat = new Float32Array(128);
    expect(new Set(histogram({ temperature: 1, topP: 0.25, seed: 1 }, flat, 3000).keys())).toEqual(new Set([...Array(32).keys()]));
    // Top-p applies to the mass left after top-k: 0.25 · 64 tokens = the first 16.
    expect(new Set(histogram({ temperature: 1, topK: 64, topP: 0.25, seed: 1 }, flat, 3000).keys())).toEqual(new Set([...Array(16).keys()]));
  });

  it('min-p drops tokens below minP · p_max', () => {
    const logits = logitsFromProbs([0.05, 0.5, 0.1, 0.3, 0.05]);
    // 0.1 / 0.5 = 0.2 ≥ 0.15 kept; 0.05 / 0.5 = 0.1 dropped.
    expect(new Set(histogram({ temperature: 1, minP: 0.15, seed: 3 }, logits, 4000).keys())).toEqual(new Set([1, 2, 3]));
    expect(new Set(histogram({ temperature: 1, minP: 0.7, seed: 3 }, logits, 1000).keys())).toEqual(new Set([1]));
  });

  it('matches a full-sort reference distribution on a large vocabulary', () => {
    const logits = randomLogits(4096, 17, 10);
    const cases: SamplingOptions[] = [
      { temperature: 0.8, topP: 0.9 },
      { temperature: 1.2, topK: 40, topP: 0.7 },
      { temperature: 0.7, minP: 0.3 },
      { temperature: 1, topK: 200, topP: 0.95, minP: 0.2 },
      { temperature: 0.5, topP: 0.5, minP: 0.5 },
      { temperature: 1.5, topP: 0.3 },
    ];
    const draws = 3000;
    for (const [i, options] of cases.entries()) {
      const ref = referenceDistribution(logits, options);
      const counts = histogram({ ...options, seed: 100 + i }, logits, draws);
      for (const id of counts.keys()) expect(ref.has(id), `token ${id} outside the support for case ${i}`).toBe(true);
      // Total variation against the reference, compared with the sampling noise of the reference itself.
      const rng = createRandom(900 + i);
      const entries = [...ref];
      const refCounts = new Map<number, number>();
      for (let d = 0; d < draws; d++) {
        let r = rng.nextFloat();
        let k = 0;
        while (k < entries.length - 1 && r >= entries[k]![1]) r -= entries[k++]![1];
        refCounts.set(entries[k]![0], (refCounts.get(entries[k]![0]) ?? 0) + 1);
      }
      let tv = 0;
      let noise = 0;
      for (const [id, p] of ref) {
        tv += Math.abs(p - (counts.get(id) ?? 0) / draws) / 2;
        noise += Math.abs(p - (refCounts.get(id) ?? 0) / draws) / 2;
      }
      expect(tv, `case ${i}, support ${ref.size}, noise ${noise}`).toBeLessThan(noise * 1.5 + 0.02);
    }
  });

  it('temperature flattens or sharpens the distribution', () => {
    const logits = logitsFromProbs([0.6, 0.3, 0.1]);
    const share = (temperature: number) =>
      (histogram({ temperature, seed: 4 }, logits, 10_000).get(0) ?? 0) / 10_000;
    const cold = share(0.3);
    const normal = share(1);
    const hot = share(5);
    expect(cold).toBeGreaterThan(0.9);
    expect(Math.abs(normal - 0.6)).toBeLessThan(0.03);
    expect(hot).toBeLessThan(0.45);
  });

  it('+Infinity logits win outright when sampling', () => {
    const logits = Float32Array.from([1, Infinity, 2, Infinity]);
    expect(new Set(histogram({ temperature: 1, seed: 9 }, logits, 500).keys())).toEqual(new Set([1, 3]));
  });
});

describe('penalties', () => {
  it('repetition penalty divides positive and multiplies negative logits', () => {
    const s = createSampler({ repetitionPenalty: 1.1 });
    expect(s.sample(Float32Array.from([2.0, 1.9]), [0])).toBe(1); // 2 / 1.1 = 1.82 < 1.9
    expect(s.sample(Float32Array.from([2.0, 1.9]), [1])).toBe(0);
    expect(s.sample(Float32Array.from([-1, -1.05]), [0])).toBe(1); // -1 · 1.1 = -1.1 < -1.05
    expect(s.sample(Float32Array.from([2.0, 1.9]), [0, 0, 0, 0])).toBe(1); // once per distinct token
    expect(s.sample(Float32Array.from([2.0, 1.8]), [0, 0, 0, 0])).toBe(0);
  });

  it('frequency penalty scales with the count; presence penalty does not', () => {
    const freq = createSampler({ frequencyPenalty: 0.2 });
    expect(freq.sample(Float32Array.from([3, 2.5]), [0])).toBe(0); // 2.8
    expect(freq.sample(Float32Array.from([3, 2.5]), [0, 0, 0])).toBe(1); // 2.4
    const presence = createSampler({ presencePenalty: 0.6 });
    expect(presence.sample(Float32Array.from([3, 2.5]), [0])).toBe(1);
    expect(presence.sample(Float32Array.from([3, 2.7]), [0, 0, 0])).toBe(1);
    expect(presence.sample(Float32Array.from([3, 2.3]), [0, 0, 0])).toBe(0);
    const negative = createSampler({ frequencyPenalty: -1 }); // encourages repetition
    expect(negative.sample(Float32Array.from([3, 2.5]), [1])).toBe(1);
  });

  it('looks only at the last penaltyLastN tokens (0 disables, −1 is everything)', () => {
    const logits = Float32Array.from([3, 2.5, 0, 0]);
    const history = [0, 2, 2, 2];
    expect(createSampler({ presencePenalty: 1, penaltyLastN: 3 }).sample(logits, history)).toBe(0);
    expect(createSampler({ presencePenalty: 1, penaltyLastN: 4 }).sample(logits, history)).toBe(1);
    expect(createSampler({ presencePenalty: 1, penaltyLastN: -1 }).sample(logits, history)).toBe(1);
    expect(createSampler({ presencePenalty: 1, penaltyLastN: 0 }).sample(logits, history)).toBe(0);
    const longHistory = [0, ...new Array(100).fill(3)];
    expect(createSampler({ presencePenalty: 1 }).sample(logits, longHistory)).toBe(0); // default 64
    expect(createSampler({ presencePenalty: 1, penaltyLastN: -1 }).sample(logits, longHistory)).toBe(1);
  });

  it('ignores history ids outside the vocabulary, and is stable across calls', () => {
    const s = createSampler({ presencePenalty: 1 });
    const logits = Float32Array.from([3, 2.5]);
    expect(s.sample(logits, [-1, 7, 1.5, 99999, Number.NaN])).toBe(0);
    // Counts are reset between calls: a second call sees the same result.
    expect(s.sample(logits, [0])).toBe(1);
    expect(s.sample(logits, [1])).toBe(0);
  });

  it('changes sampled choices too, and never mutates the caller’s logits', () => {
    const logits = logitsFromProbs([0.5, 0.5]);
    const copy = logits.slice();
    const counts = histogram({ temperature: 1, repetitionPenalty: 3, seed: 8 }, logits, 4000, [0]);
    expect((counts.get(1) ?? 0) / 4000).toBeGreaterThan(0.6);
    expect(logits).toEqual(copy);
    const all = createSampler({ temperature: 0.9, topK: 1000, topP: 0.9, minP: 0.01, repetitionPenalty: 1.3, frequencyPenalty: 0.5, seed: 1 });
    const big = randomLogits(50_000, 99);
    const bigCopy = big.slice();
    for (let i = 0; i < 20; i++) all.sample(big, [1, 2, 3, 4, 5, i]);
    expect(big).toEqual(bigCopy);
  });
});

describe('options', () => {
  it('rejects invalid options with a typed error', () => {
    const bad: SamplingOptions[] = [
      { temperature: -1 },
      { temperature: Number.NaN },
      { temperature: Infinity },
      { topK: -1 },
      { topK: 1.5 },
      { topP: -0.1 },
      { topP: 1.1 },
      { minP: -0.1 },
      { minP: 2 },
      { repetitionPenalty: 0 },
      { penaltyLastN: -2 },
      { frequencyPenalty: Number.NaN },
      { presencePenalty: Infinity },
      { seed: 1.5 },
      { seed: 2 ** 60 },
    ];
    for (const options of bad) {
      expect(() => createSampler(options), JSON.stringify(options)).toThrow(InvalidSamplingOptionsError);
    }
  });
});

describe('expNonPositive', () => {
  it('matches Math.exp to 2e-7 relative error', () => {
    const rng = createRandom(5);
    let worst = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = -rng.nextFloat() * (i % 2 ? 2 : 700);
      const rel = Math.abs(expNonPositive(x) / Math.exp(x) - 1);
      if (rel > worst) worst = rel;
    }
    expect(worst).toBeLessThan(2e-7);
    expect(expNonPositive(0)).toBe(1);
    expect(expNonPositive(-Infinity)).toBe(0);
    expect(expNonPositive(Number.NaN)).toBe(0);
    expect(expNonPositive(-800)).toBe(0);
  });
});

describe('performance on a 128k vocabulary', () => {
  it('samples quickly with top-k, top-p and penalties', () => {
    const vocab = 128_256;
    const logits = randomLogits(vocab, 1234, 8);
    const history = Array.from({ length: 64 }, (_, i) => i * 97);
    const configs: [string, SamplingOptions][] = [
      ['greedy', {}],
      ['greedy+penalties', { repetitionPenalty: 1.1 }],
      ['topK 40', { temperature: 0.8, topK: 40 }],
      ['topK 40 + topP 0.95 + penalties', { temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1.1 }],
      ['topP 0.9', { temperature: 0.8, topP: 0.9 }],
      ['minP 0.05', { temperature: 0.8, minP: 0.05 }],
      ['full distribution', { temperature: 1 }],
    ];
    for (const [name, options] of configs) {
      const sampler = createSampler({ ...options, seed: 1 });
      for (let i = 0; i < 3; i++) sampler.sample(logits, history); // warm up
      const n = 30;
      const start = performance.now();
      for (let i = 0; i < n; i++) sampler.sample(logits, history);
      const ms = (performance.now() - start) / n;
      console.log(`sampling ${name}: ${ms.toFixed(3)} ms/token`);
      expect(ms, name).toBeLessThan(50);
    }
  });
});

describe('StopMatcher', () => {
  const run = (matcher: StopMatcher, deltas: string[]) => {
    let out = '';
    let stopped = false;
    for (const delta of deltas) {
      const r = matcher.push(delta);
      expect(r.emit.length >= 0).toBe(true);
      out += r.emit;
      stopped = r.stopped;
    }
    if (!stopped) out += matcher.flush();
    return { out, stopped };
  };

  it('stops on a string split across deltas and never emits any of it', () => {
    const m = new StopMatcher(['</s>', '\n\nUser:']);
    expect(m.push('Hello <')).toEqual({ emit: 'Hello ', stopped: false });
    expect(m.push('/')).toEqual({ emit: '', stopped: false });
    expect(m.push('s> more')).toEqual({ emit: '', stopped: true });
    expect(m.stopped).toBe(true);
    expect(m.matched).toBe('</s>');
    expect(m.push('anything')).toEqual({ emit: '', stopped: true });
    expect(m.flush()).toBe('');
  });

  it('releases held text once it cannot start a stop string', () => {
    const m = new StopMatcher(['STOP']);
    expect(m.push('a ST')).toEqual({ emit: 'a ', stopped: false });
    expect(m.pending).toBe('ST');
    expect(m.push('ART')).toEqual({ emit: 'START', stopped: false });
    expect(m.push(' STO')).toEqual({ emit: ' ', stopped: false });
    expect(m.flush()).toBe('STO');
  });

  it('handles every split of the text into two and three deltas', () => {
    const stops = ['\n\nUser:', 'END', 'ENDING'];
    const texts: [string, string, boolean][] = [
      ['Answer: 42.\n\nUser: next', 'Answer: 42.\n\n'.slice(0, 'Answer: 42.'.length), true],
      ['no stop here, just EN and \n\nUse', 'no stop here, just EN and \n\nUse', false],
      ['We stop at the END of it', 'We stop at the ', true],
      ['ENENENDx', 'ENEN', true],
    ];
    for (const [text, expected, shouldStop] of texts) {
      for (let i = 0; i <= text.length; i++) {
        expect(run(new StopMatcher(stops), [text.slice(0, i), text.slice(i)])).toEqual({ out: expected, stopped: shouldStop });
        for (let j = i; j <= text.length; j += 3) {
          const deltas = [text.slice(0, i), text.slice(i, j), text.slice(j)];
          expect(run(new StopMatcher(stops), deltas)).toEqual({ out: expected, stopped: shouldStop });
        }
      }
      // One character at a time: no emitted prefix ever contains a stop string.
      const m = new StopMatcher(stops);
      let emitted = '';
      for (const ch of text) {
        emitted += m.push(ch).emit;
        for (const s of stops) expect(emitted.includes(s)).toBe(false);
      }
    }
  });

  it('picks the earliest stop string; no stops passes text straight through', () => {
    expect(run(new StopMatcher(['b', 'abc']), ['xxabc'])).toEqual({ out: 'xx', stopped: true });
    expect(run(new StopMatcher(['c', 'ab']), ['xxa', 'bc'])).toEqual({ out: 'xx', stopped: true });
    expect(run(new StopMatcher(['bc', 'abc']), ['xxab', 'c'])).toEqual({ out: 'xx', stopped: true });
    expect(run(new StopMatcher([]), ['a', 'b'])).toEqual({ out: 'ab', stopped: false });
    expect(run(new StopMatcher(['']), ['a', 'b'])).toEqual({ out: 'ab', stopped: false });
  });

  it('checks stop tokens', () => {
    const m = new StopMatcher([], [2, 128009]);
    expect(m.isStopToken(2)).toBe(true);
    expect(m.isStopToken(3)).toBe(false);
    expect(isStopToken(128009, [2, 128009])).toBe(true);
    expect(isStopToken(5, new Set([2]))).toBe(false);
  });
});
