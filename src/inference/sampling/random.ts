/** The samplers' PRNG: deterministic for a seed, never Math.random. */
import { InvalidSamplingOptionsError } from '../errors.js';

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

export function randomSeed(): number {
  return globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
}
