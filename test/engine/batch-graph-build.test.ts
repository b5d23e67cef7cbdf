// runs alone: it compares two build times
/**
 * A batch graph is built in time linear in its blocks. Its slots' attention tensors have row and score counts that
 * onnxruntime cannot infer, so planned in one graph they never match a free buffer, pile up in the planner's free
 * list and make every later lookup scan them all: creating a 30-block, 8-slot SmolLM2 span took 11–17 s, and a
 * server could not answer until it was done. Each layer's slots now sit in a subgraph that is planned apart.
 */
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../src/model/types.js';
import { MemoryWeightStore } from '../../src/engine/onnx/weight-store.js';
import { createOrtSession } from '../../src/engine/runtime.js';
import { spanGraphBuilder, type LayerWeights } from '../../src/engine/span-graph.js';
import type { F32Weight } from '../../src/engine/weights.js';

// Tiny widths: the planner's work depends on the graph's nodes, not on the weights' sizes.
const H = 64;
const FFN = 128;
const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 16;

function config(layers: number): ModelConfig {
  return {
    architecture: 'llama',
    hiddenSize: H,
    intermediateSize: FFN,
    numLayers: layers,
    numHeads: HEADS,
    numKvHeads: KV_HEADS,
    headDim: HEAD_DIM,
    vocabSize: 100,
    rmsNormEps: 1e-5,
    ropeTheta: 10_000,
    ropeInterleaved: true,
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: true,
    attentionBias: false,
  };
}

const linear = (n: number, k: number): F32Weight => ({ kind: 'f32', n, k, data: new Float32Array(n * k).fill(0.01) });

function layer(): LayerWeights {
  return {
    attnNorm: new Float32Array(H).fill(1),
    qkv: linear((HEADS + 2 * KV_HEADS) * HEAD_DIM, H),
    output: linear(H, HEADS * HEAD_DIM),
    ffnNorm: new Float32Array(H).fill(1),
    gateUp: linear(2 * FFN, H),
    down: linear(H, FFN),
  };
}

/** Milliseconds to create the onnxruntime session of an 8-slot batch graph of `layers` blocks. */
async function buildMs(layers: number): Promise<number> {
  const builder = spanGraphBuilder({ config: config(layers), layerCount: layers, mode: 'batch', batch: 8, name: `scaling_${layers}`, weights: new MemoryWeightStore(), kvCacheType: 'f16' });
  for (let l = 0; l < layers; l++) builder.addLayer(layer());
  const graph = builder.finish();
  const start = performance.now();
  const session = await createOrtSession(graph, { threads: 1 });
  const ms = performance.now() - start;
  await session.release();
  return ms;
}

describe('batch graph creation', () => {
  it('grows linearly with the blocks: 4× the blocks take well under 16× the time', async () => {
    await buildMs(2); // onnxruntime's first session pays one-time set-up
    const small = Math.min(await buildMs(8), await buildMs(8));
    const large = await buildMs(32);
    console.log(`8-slot batch graph: 8 blocks ${small.toFixed(0)} ms, 32 blocks ${large.toFixed(0)} ms (×${(large / small).toFixed(1)})`);
    // Linear is ×4; the quadratic planning this guards against measured ×9 for ×3 the blocks (10 → 30).
    expect(large / small).toBeLessThan(8);
  });
});
