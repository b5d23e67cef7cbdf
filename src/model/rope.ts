/**
 * RoPE frequencies. Llama 3.1+ scales low frequencies ("llama3" rope scaling). A config carries that either as
 * `ModelConfig.ropeScaling` (Hugging Face config.json, or GGUF metadata `{arch}.rope.scaling.type = "llama3"`) or,
 * in GGUF files converted by llama.cpp, as a `rope_freqs` tensor of headDim/2 divisors. Both reduce to one
 * inverse-frequency table here, so the engine needs a single code path.
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
 * Inverse frequencies θ_i (radians per position) for the headDim/2 rotation pairs: base^(-2i/headDim), divided by
 * the llama3 factors when the config has rope scaling, or by `freqFactors` (a GGUF `rope_freqs` tensor) when
 * given. Pair i rotates dims (2i, 2i+1) when ropeInterleaved, else (i, i + headDim/2).
 */
export function ropeInverseFrequencies(config: ModelConfig, freqFactors?: Float32Array): Float32Array {
  const half = config.headDim / 2;
  const factors = freqFactors ?? (config.ropeScaling ? llama3RopeFactors(config.headDim, config.ropeTheta, config.ropeScaling) : undefined);
  if (factors && factors.length !== half) {
    throw new RangeError(`rope_freqs has ${factors.length} entries, expected headDim/2 = ${half}`);
  }
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const base = 1 / config.ropeTheta ** ((2 * i) / config.headDim);
    out[i] = factors ? base / factors[i]! : base;
  }
  return out;
}
