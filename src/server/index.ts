/** The block server: span choice, sessions and batching, throughput, announcements, whole-model generation. */
export * from './errors.js';
export { BatchScheduler, type BatchSchedulerOptions, type SchedulerStats } from './batch-scheduler.js';
export { BlockService, type BlockServiceOptions, type LocalSession } from './block-service.js';
export { createBlockServer, type BlockServer, type BlockServerOptions } from './block-server.js';
export { GENERATE_PROTOCOL, serveGenerate, type GenerateContext } from './generate-protocol.js';
export * from './span-choice.js';
export * from './throughput.js';
