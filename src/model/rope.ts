/**
 * RoPE angles. Llama 3.1+ scales low frequencies ("llama3" rope scaling). A config carries that either as
 * `ModelConfig.ropeScaling` (Hugging Face config.json, or GGUF metadata `{arch}.rope.scaling.type = "llama3"`) or,
 * in GGUF files converted by llama.cpp, as a `rope_freqs` tensor of headDim/2 divisors. Both reduce to one table of
 * per-pair frequency factors here, so the engine needs a single code path.
 *
 * Angles are computed exactly as ggml computes them (ggml_rope_cache_init with freq_scale 1 and no YaRN), so that
 * long positions match llama.cpp: an angle near 4,000 radians carries an f32 rounding error of ~1e-4, and any other
 * order of operations (p · base^(-2i/d) in f64, then rounded) lands on different f32 angles.
 */
import type { ModelConfig, RopeScaling } from './types.js';

/**
 * The per-pair divisors that llama3 scaling applies to the base inverse frequencies (what llama.cpp stores in
 * `rope_freqs`): 1 for high frequencies, `factor` for low ones, a smooth blend in between.
 */
export function llama3RopeFactors(headDim: number, theta: number, s: RopeScaling): Float32Array {
  const half = headDim / 2;
  const out = new Float32Array(half);
  const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = 1 / theta ** ((2 * i) / headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highFreqWavelen) out[i] = 1;
    else if (wavelen > lowFreqWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/**
 * The headDim/2 frequency divisors of a model: a GGUF `rope_freqs` tensor when given, else the llama3 factors of
 * the config's rope scaling, else undefined (all 1).
 */
export function ropeFrequencyFactors(config: ModelConfig, tensorFactors?: Float32Array): Float32Array | undefined {
  const half = config.headDim / 2;
  if (tensorFactors && tensorFactors.length !== half) {
    throw new RangeError(`rope_freqs has ${tensorFactors.length} entries, expected headDim/2 = ${half}`);
  }
  return tensorFactors ?? (config.ropeScaling ? llama3RopeFactors(config.headDim, config.ropeTheta, config.ropeScaling) : undefined);
}

/** ggml's ratio between consecutive pairs' angles: powf(base, -2/headDim), all in f32. */
export function ropeThetaScale(config: ModelConfig): number {
  return Math.fround(Math.fround(config.ropeTheta) ** Math.fround(-2 / config.headDim));
}

/**
 * Writes the headDim/2 angles of one position into `out` at `offset`, as ggml does: pair 0 turns by the position,
 * each next pair by the previous pair's angle times `thetaScale` (rounded to f32 at every step, so the rounding
 * accumulates exactly as in llama.cpp), and a pair's angle is divided, in f32, by its frequency factor.
 * Pair i rotates dims (2i, 2i+1) when ropeInterleaved, else (i, i + headDim/2).
 */
export function writeRopeAngles(position: number, thetaScale: number, half: number, factors: Float32Array | undefined, out: Float32Array, offset = 0): void {
  let theta = Math.fround(position);
  for (let i = 0; i < half; i++) {
    out[offset + i] = factors ? Math.fround(theta / factors[i]!) : theta;
    theta = Math.fround(theta * thetaScale);
  }
}
