/**
 * onnxruntime-node session creation in one place: execution provider choice, thread counts, and where the weights
 * come from (a staged file or memory, per the graph's weight store).
 */
import ort from 'onnxruntime-node';
import { KernelError } from './errors.js';
import type { GraphBuilder } from './onnx/graph.js';
import type { EngineOptions } from './types.js';

export { ort };

export async function createOrtSession(graph: GraphBuilder, options: EngineOptions): Promise<ort.InferenceSession> {
  const provider = options.executionProvider ?? 'cpu';
  if (provider === 'cuda' && !ort.listSupportedBackends().some((b) => b.name === 'cuda')) {
    throw new KernelError('the CUDA execution provider is not available in this onnxruntime-node build');
  }
  try {
    const input = graph.weights.modelInput(graph.name, graph.encode());
    const sessionOptions = {
      executionProviders: provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
      intraOpNumThreads: options.threads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      ...('model' in input ? { externalData: input.externalData } : {}),
      logSeverityLevel: 3,
      // With several threads, decode's many small kernels drown in thread-pool hand-offs; dynamic block
      // scheduling cut a SmolLM2 decode step from ~50 ms to ~19 ms at 2 threads here. Workers that spin between
      // kernels take the cores the other threads (and a server's other processes) need: without spinning, 2-thread
      // SmolLM2 decode went 27 → 43 tok/s at f32, 49 → 64 at q8_0 and 58 → 78 at q4_0 (prefill 0–15% slower).
      ...((options.threads ?? 1) > 1 ? { extra: { session: { dynamic_block_base: '4', 'intra_op.allow_spinning': '0' } } } : {}),
    } as ort.InferenceSession.SessionOptions;
    return await ('model' in input ? ort.InferenceSession.create(input.model, sessionOptions) : ort.InferenceSession.create(input.path, sessionOptions));
  } catch (error) {
    throw new KernelError(`onnxruntime could not build graph "${graph.name}": ${(error as Error).message}`, { cause: error });
  }
}

/** Serializes async work: one graph run at a time per executor, in arrival order. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.tail.then(task, task);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
