/**
 * Rotary position embedding tables. Frequency factors come once per model (Llama 3 scaling, from metadata or from
 * a GGUF `rope_freqs` tensor); cos/sin rows are produced per step for exactly the positions being processed, so a
 * session's length is never bounded by a precomputed table. Angles follow ggml's arithmetic (see model/rope.ts).
 */
import { ropeFrequencyFactors, ropeThetaScale, writeRopeAngles } from '../model/rope.js';
import { dequantize } from '../model/quant.js';
import type { ModelSource } from '../model/types.js';

export class RopeTable {
  readonly half: number;
  private readonly factors: Float32Array | undefined;
  private readonly thetaScale: number;

  constructor(source: ModelSource) {
    const tensor = source.tensorNames().includes('rope_freqs') ? dequantize(source.readTensor('rope_freqs')) : undefined;
    this.half = source.config.headDim / 2;
    this.factors = ropeFrequencyFactors(source.config, tensor);
    this.thetaScale = ropeThetaScale(source.config);
  }

  /** Writes cos/sin rows for `positions` into the given [positions.length, half] buffers. */
  fill(positions: ArrayLike<number>, cos: Float32Array, sin: Float32Array): void {
    const half = this.half;
    for (let r = 0; r < positions.length; r++) {
      // The angles go into `cos` first and are replaced by their cosines in place.
      writeRopeAngles(positions[r]!, this.thetaScale, half, this.factors, cos, r * half);
      for (let i = r * half; i < (r + 1) * half; i++) {
        const angle = cos[i]!;
        // cosf/sinf of the f32 angle; storing into a Float32Array rounds as they do.
        cos[i] = Math.cos(angle);
        sin[i] = Math.sin(angle);
      }
    }
  }
}
