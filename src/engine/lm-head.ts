/**
 * The LM head: final RMSNorm and the output projection as one graph over the last hidden row of each session.
 */
import { dequantize } from '../model/quant.js';
import type { ModelSource } from '../model/types.js';
import { collectGarbage } from '../util/gc.js';
import { KernelError } from './errors.js';
import { DataType, GraphBuilder } from './onnx/graph.js';
import { openWeightStore, type WeightStore } from './onnx/weight-store.js';
import { createOrtSession, ort, SerialQueue } from './runtime.js';
import { linear } from './span-graph.js';
import type { EngineOptions, LmHead } from './types.js';
import { toLinearWeight } from './weights.js';

/** The head's graph; its weights go to `weights` and nothing here keeps them, so they can be collected. */
function buildLmHeadGraph(source: ModelSource, weights: WeightStore, accuracyLevel: number): GraphBuilder {
  const c = source.config;
  const g = new GraphBuilder('tail', { weights });
  const x = g.input('hidden', DataType.FLOAT, ['R', c.hiddenSize]);
  const normed = g.op('SimplifiedLayerNormalization', [x, g.float(dequantize(source.readTensor('output_norm')))], {
    axis: -1,
    epsilon: { float: c.rmsNormEps },
  });
  const head = source.readTensor(source.tensorNames().includes('output') ? 'output' : 'token_embd');
  const logits = linear(g, normed, toLinearWeight(head), 'lm_head', accuracyLevel, true);
  g.node('Identity', [logits], { outputs: ['logits'] });
  g.output('logits', DataType.FLOAT, ['R', c.vocabSize]);
  return g;
}

export async function loadLmHead(source: ModelSource, options: EngineOptions = {}): Promise<LmHead> {
  const c = source.config;
  const weights = openWeightStore(options.stagingDir);
  let session: ort.InferenceSession;
  try {
    session = await createOrtSession(buildLmHeadGraph(source, weights, options.quantizedActivations === false ? 0 : 4), options);
  } finally {
    weights.dispose();
  }
  collectGarbage();
  const queue = new SerialQueue();
  const H = c.hiddenSize;

  const run = (rows: readonly Float32Array[]) =>
    queue.run(async () => {
      const input = new Float32Array(rows.length * H);
      rows.forEach((r, i) => input.set(r.subarray(r.length - H), i * H));
      try {
        const out = await session.run({ hidden: new ort.Tensor('float32', input, [rows.length, H]) });
        const data = out.logits!.data as Float32Array;
        return rows.map((_, i) => data.slice(i * c.vocabSize, (i + 1) * c.vocabSize));
      } catch (error) {
        throw new KernelError(`LM head failed: ${(error as Error).message}`, { cause: error });
      }
    });

  return {
    logits: async (hidden) => (await run([hidden]))[0]!,
    logitsBatch: run,
  };
}
