/**
 * Whole-model generation (LlamaNet style): with every block served, loads the embeddings and LM head and answers
 * /corolla/generate/1.0.0 (generate-protocol.ts). `corolla serve --blocks all` enables it.
 */
import type { Stream } from '@libp2p/interface';
import { loadEmbeddings } from '../../engine/embeddings.js';
import { loadLmHead } from '../../engine/lm-head.js';
import type { Embeddings, LmHead } from '../../engine/types.js';
import type { Logger } from '../../util/logger.js';
import { STREAM_LIMITS } from '../defaults.js';
import { ServerConfigError, ShuttingDownError } from '../errors.js';
import { GENERATE_PROTOCOL, serveGenerate } from '../generate-protocol.js';
import type { ServerService, ServiceFactory, ServiceHost } from './types.js';

export interface WholeModelGenerationInit {
  /** Longest prompt + maxTokens of a generation (default: the model's context length). */
  readonly maxLength?: number;
}

export class WholeModelGeneration implements ServerService {
  private readonly log: Logger;
  private model: { embeddings: Embeddings; lmHead: LmHead } | undefined;
  private handled = false;

  constructor(private readonly host: ServiceHost, private readonly init: WholeModelGenerationInit = {}) {
    this.log = host.logger.forComponent('corolla:server:generate');
  }

  async start(): Promise<void> {
    const { host } = this;
    if (host.range.start !== 0 || host.range.end !== host.numBlocks) {
      throw new ServerConfigError(`whole-model generation needs every block served (range "all"), not [${host.range.start}, ${host.range.end}) of ${host.numBlocks}`);
    }
    this.model ??= { embeddings: loadEmbeddings(host.source), lmHead: await loadLmHead(host.source, { threads: host.settings.threads, executionProvider: host.settings.executionProvider }) };
    await host.node.libp2p.handle(GENERATE_PROTOCOL, (stream) => this.serve(stream), STREAM_LIMITS);
    this.handled = true;
    this.log(`serving whole-model generation on ${GENERATE_PROTOCOL}`);
  }

  async stop(): Promise<void> {
    if (!this.handled) return;
    this.handled = false;
    await this.host.node.libp2p.unhandle(GENERATE_PROTOCOL).catch(() => {});
  }

  private serve(stream: Stream): Promise<void> | void {
    const service = this.host.blockService;
    if (!this.model || !service || this.host.busy) return stream.abort(new ShuttingDownError('the server is not serving'));
    const { source } = this.host;
    return serveGenerate(stream, {
      service,
      embeddings: this.model.embeddings,
      lmHead: this.model.lmHead,
      vocabSize: source.config.vocabSize,
      eos: source.tokenizer?.special.eos ?? [],
      maxLength: this.init.maxLength ?? source.config.maxPositionEmbeddings,
      log: (line) => this.log.error(line),
    });
  }
}

/** Whole-model generation as a server service. */
export function wholeModelGeneration(init: WholeModelGenerationInit = {}): ServiceFactory<WholeModelGeneration> {
  return (host) => new WholeModelGeneration(host, init);
}
