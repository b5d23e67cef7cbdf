/**
 * A whole model in this process: head, every block as one span, and tail. What `corolla generate` runs, and the
 * reference that split and remote execution must match.
 */
import type { ModelConfig, ModelSource } from '../model/types.js';
import { createProgress } from '../util/progress.js';
import type { InferenceSession } from './generate.js';
import { loadHead, type EmbeddingHead } from './head.js';
import { loadSpan, type SpanLoadOptions } from './span-executor.js';
import { loadTail } from './tail.js';
import type { ModelTail, SpanExecutor } from './types.js';

export interface LocalModel {
  readonly config: ModelConfig;
  readonly head: EmbeddingHead;
  readonly span: SpanExecutor;
  readonly tail: ModelTail;
  openSession(maxLength: number): InferenceSession;
  dispose(): Promise<void>;
}

let sessionCounter = 0;

export async function loadLocalModel(source: ModelSource, options: SpanLoadOptions & { quiet?: boolean } = {}): Promise<LocalModel> {
  const progress = createProgress(`loading ${source.location}`, { quiet: options.quiet, unit: 'items' });
  const total = source.config.numLayers;
  const head = loadHead(source);
  const span = await loadSpan(source, { start: 0, end: total }, { ...options, onLayer: (done) => progress.update(done, total) });
  const tail = await loadTail(source, options);
  progress.done(`loaded ${total} blocks`);
  return {
    config: source.config,
    head,
    span,
    tail,
    openSession(maxLength) {
      const id = `local-${++sessionCounter}`;
      span.openSession(id, maxLength);
      return {
        next: async (ids) => tail.logits(await span.step({ sessionId: id, hidden: head.embed(ids) })),
        close: async () => span.closeSession(id),
      };
    },
    async dispose() {
      await span.dispose();
    },
  };
}
