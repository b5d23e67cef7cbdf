/**
 * Rotary position embedding tables. Frequencies are computed once per model (with Llama 3 frequency scaling when
 * configured); cos/sin rows are produced per step for exactly the positions being processed, so a session's
 * length is never bounded by a precomputed table.
 */
import type { ModelConfig } from '../model/types.js';

export function inverseFrequencies(config: ModelConfig): Float64Array {
  const half = config.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / config.headDim);
  const s = config.ropeScaling;
  if (s?.type === 'llama3') {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i]!;
      if (wavelen > lowWavelen) inv[i] = inv[i]! / s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i]! / s.factor) + smooth * inv[i]!;
      }
    }
  }
  return inv;
}

export class RopeTable {
  private readonly inv: Float32Array;
  constructor(config: ModelConfig) {
    // Frequencies in float32, as llama.cpp and PyTorch use them, so angles match the references bit for bit.
    this.inv = Float32Array.from(inverseFrequencies(config));
  }

  get half(): number {
    return this.inv.length;
  }

  /** Writes cos/sin rows for `positions` into the given [positions.length, half] buffers. */
  fill(positions: ArrayLike<number>, cos: Float32Array, sin: Float32Array): void {
    const half = this.inv.length;
    for (let r = 0; r < positions.length; r++) {
      const p = positions[r]!;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * this.inv[i]!);
        cos[r * half + i] = Math.cos(angle);
        sin[r * half + i] = Math.sin(angle);
      }
    }
  }
}
