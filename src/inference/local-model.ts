/**
 * A whole model in this process: embeddings, every block as one span, and the LM head. What `corolla generate` runs without a
 * swarm, and the reference that split and remote execution must match.
 */
import { loadEmbeddings, type EmbeddingTable } from '../engine/embeddings.js';
import { loadSpan, type SpanLoadOptions } from '../engine/span-executor.js';
import { loadLmHead } from '../engine/lm-head.js';
import type { LmHead, SpanExecutor } from '../engine/types.js';
import { openModel, type OpenModelOptions } from '../model/load.js';
import { InvalidTokenizerError } from '../model/tokenizer/errors.js';
import { createTokenizer } from '../model/tokenizer/index.js';
import type { ModelConfig, ModelSource, Tokenizer } from '../model/types.js';
import { progressTask, type OnProgress } from '../util/progress.js';
import type { InferenceSession, LanguageModel } from './language-model.js';

export interface LocalModelOptions extends Omit<SpanLoadOptions, 'onLayer'> {
  /** Progress of loading the blocks (and, from open(), of a Hub download). */
  readonly onProgress?: OnProgress;
}

export interface OpenLocalModelOptions extends LocalModelOptions {
  /** llama2.c only: the tokenizer.bin to use. */
  readonly tokenizerPath?: string;
  /** Hub endpoint, token and cache root. */
  readonly hub?: OpenModelOptions['hub'];
}

let sessionCounter = 0;

export class LocalModel implements LanguageModel {
  private constructor(
    private readonly source: ModelSource,
    readonly embeddings: EmbeddingTable,
    readonly span: SpanExecutor,
    readonly lmHead: LmHead,
    private readonly ownsSource: boolean,
  ) {}

  /** Loads every block of an opened model; the source stays the caller's. */
  static async load(source: ModelSource, options: LocalModelOptions = {}): Promise<LocalModel> {
    return LocalModel.build(source, options, false);
  }

  /** Opens a model file, directory or Hub id and loads it; close() also closes the file. */
  static async open(model: string, options: OpenLocalModelOptions = {}): Promise<LocalModel> {
    const source = await openModel(model, { tokenizerPath: options.tokenizerPath, ...(options.hub ? { hub: options.hub } : {}), ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
    try {
      if (!source.tokenizer) throw new InvalidTokenizerError(model, 'the model carries no tokenizer; give tokenizerPath');
      return await LocalModel.build(source, options, true);
    } catch (error) {
      source.close();
      throw error;
    }
  }

  private static async build(source: ModelSource, options: LocalModelOptions, ownsSource: boolean): Promise<LocalModel> {
    const { onProgress, ...engine } = options;
    const total = source.config.numLayers;
    const progress = progressTask(onProgress, `loading ${source.location}`, 'items');
    // The head first: the transient copies of its large matrix then fall while little else is held.
    const lmHead = await loadLmHead(source, engine);
    const span = await loadSpan(source, { start: 0, end: total }, { ...engine, onLayer: (done: number) => progress.update(done, total) });
    const embeddings = loadEmbeddings(source);
    progress.done(`loaded ${total} blocks`);
    return new LocalModel(source, embeddings, span, lmHead, ownsSource);
  }

  private cachedTokenizer: Tokenizer | undefined;

  get config(): ModelConfig {
    return this.source.config;
  }

  get tokenizer(): Tokenizer {
    if (!this.source.tokenizer) throw new InvalidTokenizerError(this.source.location, 'the model carries no tokenizer');
    return (this.cachedTokenizer ??= createTokenizer(this.source.tokenizer));
  }

  async openSession(maxLength: number): Promise<InferenceSession> {
    const id = `local-${++sessionCounter}`;
    const { span, embeddings, lmHead } = this;
    span.openSession(id, maxLength);
    const H = span.hiddenSize;
    return {
      next: async (ids) => lmHead.logits(await span.step({ sessionId: id, hidden: embeddings.embed(ids) })),
      nextRows: async (ids) => {
        const hidden = await span.step({ sessionId: id, hidden: embeddings.embed(ids) });
        return lmHead.logitsBatch(ids.map((_, i) => hidden.subarray(i * H, (i + 1) * H)));
      },
      rewind: async (position) => span.rewind(id, position),
      close: async () => span.closeSession(id),
    };
  }

  async close(): Promise<void> {
    await this.span.dispose();
    if (this.ownsSource) this.source.close();
  }
}

/** Loads every block of `source` in this process (the source stays the caller's). */
export const loadLocalModel = (source: ModelSource, options: LocalModelOptions = {}): Promise<LocalModel> => LocalModel.load(source, options);
