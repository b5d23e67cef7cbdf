/**
 * `corolla/types`: the public types alone. Every line is `export type`, so importing this module loads no code —
 * neither libp2p nor onnxruntime — which suits type-only users such as a gateway's request handlers.
 */
export type { ErrorCode, ErrorCodeInfo, PeerError } from './errors.js';
export type { ComponentLogger, Logger } from './util/logger.js';
export type { BlockRange } from './util/blocks.js';
export type { OnProgress, ProgressEvent } from './util/progress.js';
export type { ChatMessage, ModelConfig, ModelSource, Tokenizer } from './model/types.js';
export type {
  ChatOptions,
  FinishReason,
  GenerateOptions,
  GenerationEvent,
  GenerationStats,
  GenerationStream,
  InferenceSession,
  LanguageModel,
  PromptOptions,
  SamplingOptions,
  ServerUsage,
} from './inference/index.js';
export type { SwarmNode, SwarmNodeOptions } from './swarm/node.js';
export type { ServerRecord } from './swarm/records/index.js';
export type { RemoteModelComponents, RemoteModelEvents, RemoteModelOptions } from './client/remote-model.js';
export type { BlockServer, BlockServerOptions } from './server/block-server.js';
export type { BlockServerComponents, BlockServerSettings } from './server/settings.js';
export type { BlockServerEvents } from './server/events.js';
