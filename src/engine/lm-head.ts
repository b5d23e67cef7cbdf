/**
 * The LM head: final RMSNorm and the output projection as one graph over the last hidden row of each session.
 */
import { dequantize } from '../model/quant.js';
import type { ModelSource } from '../model/types.js';
import { KernelError } from './errors.js';
import { DataType, GraphBuilder } from './onnx/graph.js';
import { createOrtSession, ort, SerialQueue } from './runtime.js';
import { linear } from './span-graph.js';
import type { EngineOptions, LmHead } from './types.js';
import { toLinearWeight } from './weights.js';

export async function loadLmHead(source: ModelSource, options: EngineOptions = {}): Promise<LmHead> {
  const c = source.config;
  const names = new Set(source.tensorNames());
  const head = source.readTensor(names.has('output') ? 'output' : 'token_embd');
  const g = new GraphBuilder('tail');
  const x = g.input('hidden', DataType.FLOAT, ['R', c.hiddenSize]);
  const normed = g.op('SimplifiedLayerNormalization', [x, g.float(dequantize(source.readTensor('output_norm')))], {
    axis: -1,
    epsilon: { float: c.rmsNormEps },
  });
  const logits = linear(g, normed, toLinearWeight(head), 'lm_head', options.quantizedActivations === false ? 0 : 4, true);
  g.node('Identity', [logits], { outputs: ['logits'] });
  g.output('logits', DataType.FLOAT, ['R', c.vocabSize]);
  const session = await createOrtSession(g, options);
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
