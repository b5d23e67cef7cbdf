/**
 * A load hands back no garbage: the weight buffers it read are collected by the time it returns. V8 would otherwise
 * keep up to about 64 MB of them until its external-memory heuristic fired, and onnxruntime's arena took fresh pages
 * for the first prefill beside them (SmolLM2 q8_0 peaked at 491 MB; 447 MB with the collection).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLmHead } from '../../src/engine/lm-head.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import type { ModelSource } from '../../src/model/types.js';
import { testModel } from '../support/models.js';

/** The source, with a weak reference to every tensor buffer it hands out. */
function watched(source: ModelSource): { source: ModelSource; buffers: WeakRef<object>[] } {
  const buffers: WeakRef<object>[] = [];
  const readTensor: ModelSource['readTensor'] = (name) => {
    const tensor = source.readTensor(name);
    buffers.push(new WeakRef(tensor.data.buffer));
    return tensor;
  };
  return { source: Object.assign(Object.create(source) as ModelSource, { readTensor }), buffers };
}

/** Lets the job that created the references end, so that the engine's collection is what decides. */
const nextTask = () => new Promise((resolve) => setImmediate(resolve));

describe('garbage left by loading', () => {
  let model: LoadedModelSource;
  beforeAll(async () => {
    model = await openModel(testModel('stories-tiny', 'q8_0'));
  });
  afterAll(() => model?.close());

  it('a span: every weight buffer read is collected by the time loadSpan returns', async () => {
    const { source, buffers } = watched(model);
    const span = await loadSpan(source, { start: 0, end: model.config.numLayers }, { maxBatch: 4 });
    await nextTask();
    expect(buffers.length).toBeGreaterThan(model.config.numLayers * 5);
    expect(buffers.filter((b) => b.deref() !== undefined)).toHaveLength(0);
    await span.dispose();
  });

  it('an LM head: its weight buffer is collected by the time loadLmHead returns', async () => {
    const { source, buffers } = watched(model);
    await loadLmHead(source);
    await nextTask();
    expect(buffers.length).toBeGreaterThan(0);
    expect(buffers.filter((b) => b.deref() !== undefined)).toHaveLength(0);
  });
});
