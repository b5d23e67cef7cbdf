/** Servers that compute something else than the model, for spot-check tests: they sign their wrong replies as honest ones. */
import type { LoadedModelSource } from '../../src/model/load.js';
import type { SpanExecutor, SpanStep } from '../../src/engine/types.js';

/** The model with block `block` skipped: its attention and FFN outputs read as zeros, so the block passes its input through. */
export function skippingSource(source: LoadedModelSource, block: number): LoadedModelSource {
  const skipped = new Set([`blk.${block}.attn_output`, `blk.${block}.ffn_down`]);
  return Object.assign(Object.create(source) as LoadedModelSource, {
    readTensor(name: string) {
      const tensor = source.readTensor(name);
      return skipped.has(name) ? { ...tensor, data: new Uint8Array(tensor.data.length) } : tensor;
    },
  });
}

/** Adds noise of `fraction` × the row's rms to every output value of `span` (a deterministic PRNG). */
export function perturbOutputs(span: SpanExecutor, fraction: number, seed = 1): void {
  let state = seed >>> 0;
  const uniform = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const H = span.hiddenSize;
  const perturb = (out: Float32Array) => {
    for (let row = 0; row < out.length; row += H) {
      let sum = 0;
      for (let i = row; i < row + H; i++) sum += out[i]! * out[i]!;
      // uniform in ±√3·σ has standard deviation σ
      const sigma = fraction * Math.sqrt(sum / H) * Math.sqrt(3);
      for (let i = row; i < row + H; i++) out[i] = out[i]! + sigma * uniform();
    }
    return out;
  };
  const step = span.step.bind(span);
  const stepBatch = span.stepBatch.bind(span);
  Object.assign(span, {
    step: async (s: SpanStep) => perturb(await step(s)),
    stepBatch: async (steps: readonly SpanStep[]) => (await stepBatch(steps)).map(perturb),
  });
}
