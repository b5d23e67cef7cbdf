/**
 * Rotary position embedding tables. Inverse frequencies come once per model (with Llama 3 scaling, from metadata
 * or from a GGUF `rope_freqs` tensor); cos/sin rows are produced per step for exactly the positions being
 * processed, so a session's length is never bounded by a precomputed table.
 */
import { ropeInverseFrequencies } from '../model/rope.js';
import { dequantize } from '../model/quant.js';
import type { ModelSource } from '../model/types.js';

export class RopeTable {
  private readonly inv: Float32Array;
  constructor(source: ModelSource) {
    const factors = source.tensorNames().includes('rope_freqs') ? dequantize(source.readTensor('rope_freqs')) : undefined;
    this.inv = ropeInverseFrequencies(source.config, factors);
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
        // The angle is rounded to f32 as llama.cpp and PyTorch compute it, so results match them closely.
        const angle = Math.fround(p * this.inv[i]!);
        cos[r * half + i] = Math.cos(angle);
        sin[r * half + i] = Math.sin(angle);
      }
    }
  }
}
