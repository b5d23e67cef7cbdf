import { describe, expect, it } from 'vitest';
import { llama3RopeFactors, ropeFrequencyFactors, ropeThetaScale, writeRopeAngles } from '../../src/model/rope.js';
import type { ModelConfig } from '../../src/model/types.js';

const base: ModelConfig = {
  architecture: 'llama', hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64,
  vocabSize: 128256, rmsNormEps: 1e-5, ropeTheta: 500000, ropeInterleaved: true, maxPositionEmbeddings: 131072,
  tieWordEmbeddings: true, attentionBias: false,
};
const scaling = { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } as const;

describe('rope', () => {
  /** Angles of one position, as the engine computes them. */
  const angles = (config: ModelConfig, position: number, tensor?: Float32Array) => {
    const out = new Float32Array(config.headDim / 2);
    writeRopeAngles(position, ropeThetaScale(config), config.headDim / 2, ropeFrequencyFactors(config, tensor), out);
    return out;
  };

  it('plain angles are position × theta^(-2i/d)', () => {
    const f = angles(base, 1);
    expect(f).toHaveLength(32);
    expect(f[0]).toBe(1);
    // f32 results: compare relative to the exact value.
    expect(f[1]! / 500000 ** (-2 / 64)).toBeCloseTo(1, 6);
    expect(f[31]! / 500000 ** (-62 / 64)).toBeCloseTo(1, 5);
  });

  it('angles follow ggml\'s f32 recurrence, not the f64 product', () => {
    // ggml_rope_cache_init: theta_0 = p, theta_{i+1} = f32(theta_i × f32(powf(base, -2/d))).
    const config = { ...base, ropeTheta: 10000 };
    const scale = Math.fround(Math.fround(10000) ** Math.fround(-2 / 64));
    expect(ropeThetaScale(config)).toBe(scale);
    const p = 4000;
    const got = angles(config, p);
    let theta = Math.fround(p);
    let differs = 0;
    for (let i = 0; i < 32; i++) {
      expect(got[i]).toBe(theta);
      if (got[i] !== Math.fround(p * 10000 ** (-(2 * i) / 64))) differs++;
      theta = Math.fround(theta * scale);
    }
    // The rounding that accumulates is what long positions are sensitive to: most angles differ from the f64 product.
    expect(differs).toBeGreaterThan(10);
  });

  it('llama3 factors: 1 at high frequencies, factor at low, smooth in between', () => {
    const factors = llama3RopeFactors(64, 500000, scaling);
    // High-frequency pairs (wavelength < 8192/4 = 2048 positions) are untouched.
    for (let i = 0; i < 32; i++) {
      const wavelen = (2 * Math.PI) / 500000 ** (-(2 * i) / 64);
      if (wavelen < 2048) expect(factors[i]).toBe(1);
      else if (wavelen > 8192) expect(factors[i]).toBe(32);
      else {
        expect(factors[i]).toBeGreaterThan(1);
        expect(factors[i]).toBeLessThan(32);
      }
    }
    expect(factors[0]).toBe(1);
    expect(factors[31]).toBe(32);
    // Monotone non-decreasing from high to low frequency.
    for (let i = 1; i < 32; i++) expect(factors[i]!).toBeGreaterThanOrEqual(factors[i - 1]!);
  });

  it('scaled angles equal Transformers\' _compute_llama3_parameters', () => {
    const scaled = angles({ ...base, ropeScaling: scaling }, 1);
    // The reference formulation, written independently: HF divides low frequencies by the factor and blends.
    const lowWavelen = 8192 / 1;
    const highWavelen = 8192 / 4;
    for (let i = 0; i < 32; i++) {
      const inv = 1 / 500000 ** ((2 * i) / 64);
      const wavelen = (2 * Math.PI) / inv;
      let expected = wavelen > lowWavelen ? inv / 32 : inv;
      if (wavelen >= highWavelen && wavelen <= lowWavelen) {
        const smooth = (8192 / wavelen - 1) / (4 - 1);
        expected = (1 - smooth) * (inv / 32) + smooth * inv;
      }
      expect(scaled[i]! / expected).toBeCloseTo(1, 5);
    }
    // A GGUF rope_freqs tensor gives the same angles.
    expect(angles(base, 1, llama3RopeFactors(64, 500000, scaling))).toEqual(scaled);
    expect(() => ropeFrequencyFactors(base, new Float32Array(5))).toThrow(RangeError);
  });
});
