/**
 * What every route handler may use: the models, the generation service, the ledger, the shared state, metrics and
 * the gateway's settings. Built once by createGateway and passed to each route module.
 */
import type { Logger } from '../util/logger.js';
import type { GenerationService } from './generation.js';
import type { GatewayMetrics } from './metrics.js';
import type { ModelCatalog } from './model-catalog.js';
import type { AuthContext, Ledger, SharedState } from './types.js';

export interface GatewayContext {
  readonly models: ModelCatalog;
  readonly generations: GenerationService;
  readonly ledger: Ledger;
  readonly state: SharedState;
  readonly metrics: GatewayMetrics;
  readonly log: Logger;
  /** Resolves a request's Authorization header (and client address) to who is asking; throws UnauthorizedError. */
  authenticate(authorization: string | undefined, clientAddress: string): Promise<AuthContext>;
  readonly settings: {
    readonly gatewayId: string;
    /** Price per generated token in FAR, as a decimal string. */
    readonly pricePerTokenFar: string;
    readonly version: string;
    /** How often the dashboard feed pushes a snapshot (ms). */
    readonly dashboardPushMs: number;
  };
}

/** Hono's per-request variables set by the gateway's middleware. */
export interface GatewayEnv {
  Variables: { auth: AuthContext };
}
