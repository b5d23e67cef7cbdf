/**
 * What the server says about itself on the DHT: JOINING while it loads a span, ONLINE with the measured
 * throughput once it serves, live load as sessions come and go, OFFLINE on stop. Also reads the swarm's records
 * of the same model, for span choice and rebalancing.
 */
import type { PeerBinding } from '../chain/binding.js';
import type { EngineOptions } from '../engine/types.js';
import type { Accelerator, ServerState, Throughput } from '../swarm/records/index.js';
import type { AnnounceInput, Registry } from '../swarm/registry/index.js';
import { formatBlockRange, type BlockRange } from '../util/blocks.js';
import type { Logger } from '../util/logger.js';
import { SOFTWARE_VERSION } from '../version.js';
import type { BlockService } from './block-service.js';
import type { ResolvedSettings } from './settings.js';
import { ServingHistory, type SpanView } from './span-choice.js';

export interface AnnouncerInit {
  readonly registry: Registry;
  readonly settings: ResolvedSettings;
  readonly numBlocks: number;
  readonly quantization: string;
  readonly accelerator: Accelerator;
  /** The Ethereum address and its signed binding to our peer id (replaces settings.ethAddress). */
  readonly eth?: { readonly address: string; readonly binding: PeerBinding };
  readonly log: Logger;
  /** Called after each announcement. */
  readonly announced: (state: ServerState, blocks: BlockRange) => void;
}

type RecordBase = Omit<AnnounceInput, 'state' | 'span' | 'throughput' | 'cacheTokensLeft'>;

/**
 * What decides the bits of our outputs besides the weights: the backend, the activation precision, whether
 * quantized matmuls quantize activations to int8 (the span is loaded with the engine's default, which does), and an
 * f16 KV cache.
 */
export function engineFingerprint(engine: Pick<EngineOptions, 'executionProvider' | 'quantizedActivations' | 'kvCacheType'>): string {
  const kv = engine.kvCacheType === 'f16' ? '/kv-f16' : '';
  return `ort-${engine.executionProvider ?? 'cpu'}/f32/${engine.quantizedActivations === false ? 'act-f32' : 'act-int8'}${kv}`;
}

export class Announcer {
  private readonly registry: Registry;
  private readonly base: RecordBase;
  private readonly serving = new ServingHistory();

  constructor(private readonly init: AnnouncerInit) {
    const { settings } = init;
    this.registry = init.registry;
    this.base = {
      modelId: settings.modelId,
      numBlocks: init.numBlocks,
      dtype: 'f32',
      quantization: init.quantization,
      softwareVersion: SOFTWARE_VERSION,
      engine: engineFingerprint(settings),
      accelerator: init.accelerator,
      ...(settings.publicName !== undefined ? { publicName: settings.publicName } : {}),
      ...(settings.location !== undefined ? { location: settings.location } : {}),
      ...(init.eth
        ? { ethAddress: init.eth.address, ethBinding: { issuedAt: Number(init.eth.binding.issuedAt), signature: init.eth.binding.signature } }
        : settings.ethAddress !== undefined
          ? { ethAddress: settings.ethAddress }
          : {}),
    };
  }

  async joining(blocks: BlockRange, throughput: Omit<Throughput, 'effective'>, cacheTokensLeft: number): Promise<void> {
    await this.registry.announce({ ...this.base, state: 'joining', span: blocks, throughput, cacheTokensLeft });
    this.done('joining', blocks);
  }

  async online(blocks: BlockRange, throughput: Omit<Throughput, 'effective'>, cacheTokensLeft: number): Promise<void> {
    await this.registry.update({ ...this.base, state: 'online', span: blocks, throughput, cacheTokensLeft, load: { activeSessions: 0, queuedSteps: 0 } });
    this.done('online', blocks);
  }

  /** Live load (heartbeat answers; republished at most every minRepublishMs). */
  load(service: BlockService): void {
    this.registry.updateLoad({ activeSessions: service.activeSessions, queuedSteps: service.scheduler.queued, cacheTokensLeft: service.cacheTokensLeft() });
  }

  /** Announces OFFLINE; never throws. */
  async offline(blocks: BlockRange): Promise<void> {
    try {
      await this.registry.withdraw();
      this.done('offline', blocks);
    } catch (error) {
      this.init.log(`withdraw failed: ${(error as Error)?.message ?? String(error)}`);
    }
  }

  /** The announced servers of this model, as span choice sees them (none when the lookup fails; JOINING only from peers seen ONLINE). */
  async views(): Promise<SpanView[]> {
    const { modelId } = this.init.settings;
    try {
      const records = await this.registry.lookup(modelId, { numBlocks: this.init.numBlocks });
      return this.serving.filter(
        records.map(({ record }) => ({ peerId: record.peerId, start: record.span.start, end: record.span.end, throughput: record.throughput.effective, state: record.state })),
      );
    } catch (error) {
      this.init.log(`lookup of ${modelId} failed: ${(error as Error).message}`);
      return [];
    }
  }

  private done(state: ServerState, blocks: BlockRange): void {
    this.init.log(`announced ${state.toUpperCase()}${state === 'offline' ? '' : ` for blocks ${formatBlockRange(blocks)}`}`);
    this.init.announced(state, blocks);
  }
}
