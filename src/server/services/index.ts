export { WholeModelGeneration, wholeModelGeneration, type WholeModelGenerationInit } from './generation.js';
export { Rebalancing, rebalancing, type RebalancingInit } from './rebalancing.js';
export type { MoveResult, ServerService, ServiceFactories, ServiceFactory, ServiceHost, ServiceMap } from './types.js';
export { DEFAULT_METRICS_INTERVAL_MS, MetricsReporting, metricsReporting, type MetricsReportingInit } from './metrics.js';
