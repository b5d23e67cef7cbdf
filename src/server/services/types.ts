/**
 * Optional server features are services (the js-libp2p way): `createBlockServer(components, { services: { name:
 * factory } })` builds each from the server it runs in, starts it once the first span is loaded (before ONLINE is
 * announced), and stops it first on stop(). Built in: whole-model generation and rebalancing.
 */
import type { TypedEventTarget } from 'main-event';
import type { ModelSource } from '../../model/types.js';
import type { SwarmNode } from '../../swarm/node.js';
import type { Throughput } from '../../swarm/records/index.js';
import type { BlockRange } from '../../util/blocks.js';
import type { ComponentLogger } from '../../util/logger.js';
import type { BlockService } from '../block-service.js';
import type { BlockServerEvents } from '../events.js';
import type { ResolvedSettings } from '../settings.js';
import type { SpanView } from '../span-choice.js';

export interface ServerService {
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

/** The outcome of a span move: on failure the server went back to its previous span. */
export type MoveResult = { readonly moved: true } | { readonly moved: false; readonly error: unknown };

/** What a service sees of the server it runs in (its events included: sessions opening and closing…). */
export interface ServiceHost extends TypedEventTarget<BlockServerEvents> {
  readonly node: SwarmNode;
  readonly source: ModelSource;
  readonly logger: ComponentLogger;
  readonly settings: ResolvedSettings;
  readonly peerId: string;
  /** Blocks in the model. */
  readonly numBlocks: number;
  /** The span served now. */
  readonly range: BlockRange;
  readonly throughput: Throughput;
  /** The service answering the block protocol; undefined while moving between spans and once stopped. */
  readonly blockService: BlockService | undefined;
  /** True while moving between spans or once stopped: no new work. */
  readonly busy: boolean;
  readonly stopped: boolean;
  /** The announced servers of this model. */
  spanViews(): Promise<SpanView[]>;
  /** Frees the current span (closing its sessions; clients fail over) and serves `to` instead. */
  moveTo(to: BlockRange): Promise<MoveResult>;
}

export type ServiceFactory<S extends ServerService = ServerService> = (host: ServiceHost) => S;

export type ServiceMap = Record<string, ServerService>;

export type ServiceFactories<S extends ServiceMap> = { readonly [K in keyof S]: ServiceFactory<S[K]> };
