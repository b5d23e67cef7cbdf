/** The block server: span choice, sessions and batching, throughput, announcements, optional services. */
export * from './errors.js';
export * from './defaults.js';
export type * from './events.js';
export { BatchScheduler, type BatchSchedulerOptions, type SchedulerStats } from './batch-scheduler.js';
export { BlockService, type BlockServiceEvents, type BlockServiceOptions, type LocalSession } from './block-service.js';
export { createBlockServer, type BlockServer, type BlockServerOptions } from './block-server.js';
export type { BlockServerComponents, BlockServerSettings } from './settings.js';
export * from './services/index.js';
export { GENERATE_PROTOCOL, serveGenerate, type GenerateContext } from './generate-protocol.js';
export * from './span-choice.js';
export * from './throughput.js';
