// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
/**
 * Quantized weights run quantized (MatMulNBits over the file's own blocks) and yet compute exactly the weights their
 * operands describe: with f32 activations our logits equal those of the same model with every weight decoded from
 * its operands to f32 beforehand. Those operands are the file's weights exactly for every type but q6_K, which is
 * requantized within half an 8-bit step (quant-mapping.test.ts). With int8 activations (the fast default) q8_0/q4_0
 * stay within a stated bound.
 */
import { describe, expect, it } from 'vitest';
import { loadLocalModel } from '../../src/inference/local-model.js';
import { openModel } from '../../src/model/load.js';
import { linearToF32, toLinearWeight } from '../../src/engine/weights.js';
import { dequantize } from '../../src/model/quant.js';
import type { ModelSource } from '../../src/model/types.js';
import { testModel } from '../support/models.js';

/**
 * The model in f32 as the engine runs it: every matrix decoded from its kernel operands, the embeddings as stored. A
 * tied token_embd also becomes an 'output' tensor, since the LM head runs it as an operand and the lookup does not.
 */
function asRun(source: ModelSource): ModelSource {
  const tied = !source.tensorNames().includes('output');
  return {
    ...source,
    tensorNames: () => [...source.tensorNames(), ...(tied ? ['output'] : [])],
    readTensor: (name) => {
      const t = source.readTensor(tied && name === 'output' ? 'token_embd' : name);
      const values = t.shape.length === 2 && name !== 'token_embd' ? linearToF32(toLinearWeight(t)) : dequantize(t);
      return { ...t, name, type: 'f32', data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
    },
    close: () => source.close(),
  };
}

async function logitsAlong(source: ModelSource, ids: number[], options: { quantizedActivations?: boolean }) {
  const model = await loadLocalModel(source, options);
  const session = await model.openSession(ids.length + 1);
  const rows = [await session.next(ids.slice(0, 4))];
  for (const id of ids.slice(4)) rows.push(await session.next([id]));
  await model.close();
  return rows;
}

const relativeDiff = (a: Float32Array, b: Float32Array) => {
  let d = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    min = Math.min(min, b[i]!);
    max = Math.max(max, b[i]!);
  }
  return { abs: d, relative: d / (max - min) };
};

describe('quantized kernels compute the stored weights', () => {
  it.each(['q8_0', 'q4_0'] as const)('%s', async (dtype) => {
    const source = await openModel(testModel('smollm2-135m', dtype));
    const ids = [1, 504, 3258, 282, 253, 1345, 28, 665];
    const reference = await logitsAlong(asRun(source), ids, {});
    const exact = await logitsAlong(source, ids, { quantizedActivations: false });
    const fast = await logitsAlong(source, ids, { quantizedActivations: true });
    const exactWorst = Math.max(...exact.map((r, i) => relativeDiff(r, reference[i]!).abs));
    const fastWorst = Math.max(...fast.map((r, i) => relativeDiff(r, reference[i]!).relative));
    console.log(`${dtype}: f32 activations max |diff| ${exactWorst.toExponential(2)}; int8 activations ${(fastWorst * 100).toFixed(2)}% of range`);
    expect(exactWorst).toBeLessThan(1e-3);
    expect(fastWorst).toBeLessThan(0.15);
    source.close();
  }, 300_000);

  // Every other type, and the mixes (fused q|k|v of different forms run as a stack), on a small model whose rows
  // are whole super-blocks; the "d·q + m" types exercise the block-offset MatMul.
  it.each(['q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k', 'q4_k_m', 'q5_k_m'] as const)('stories-256 %s', async (dtype) => {
    const source = await openModel(testModel('stories-256', dtype));
    const ids = [1, 403, 261, 378, 280, 31, 429, 395, 29, 303];
    const reference = await logitsAlong(asRun(source), ids, {});
    const exact = await logitsAlong(source, ids, { quantizedActivations: false });
    const exactWorst = Math.max(...exact.map((r, i) => relativeDiff(r, reference[i]!).abs));
    console.log(`${dtype}: f32 activations max |diff| ${exactWorst.toExponential(2)}`);
    expect(exactWorst).toBeLessThan(1e-4);
    source.close();
  }, 120_000);
});
