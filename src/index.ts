/**
 * Corolla's public entry: what an application needs to generate locally, to generate through a swarm, and to serve
 * blocks to one. Deeper pieces (the route planner, the wire codecs, records) are reachable through the subpath
 * entries `corolla/client` and `corolla/server`; `corolla/types` has the types alone, with no runtime code.
 *
 *   import { LocalModel, RemoteModel, generateFrom, DEFAULT_MODEL_PATH } from 'corolla';
 *
 *   const model = await LocalModel.open(DEFAULT_MODEL_PATH);               // or RemoteModel.open({ model, bootstrap })
 *   const stream = generateFrom(model, 'Once upon a time', { maxTokens: 64, temperature: 0 });
 *   for await (const { text } of stream) show(text);
 *   console.log(stream.stats);                                           // tokens, timings, servers that served
 *   await model.close();
 */

// Errors: one table of codes, each with its retry and HTTP semantics.
export { CorollaError, ERROR_CODES, isErrorCode, RemoteError, toPeerError, type ErrorCode, type ErrorCodeInfo, type PeerError } from './errors.js';
export { SOFTWARE_NAME, SOFTWARE_VERSION } from './version.js';
export { lineLogger, silentLogger, type ComponentLogger, type Logger } from './util/logger.js';
export type { BlockRange } from './util/blocks.js';
export type { OnProgress, ProgressEvent } from './util/progress.js';

// Models: files, the Hub, tokenizers.
export { DEFAULT_MODEL_PATH } from './model/default-model.js';
export { openModel, modelFingerprint, type LoadedModelSource, type OpenModelOptions } from './model/load.js';
export { createTokenizer, renderChat } from './model/tokenizer/index.js';
export type { ChatMessage, ModelConfig, ModelSource, Tokenizer } from './model/types.js';

// Inference: one LanguageModel interface, one generation loop, chat.
export {
  Chat,
  DEFAULT_SAMPLING,
  generate,
  generateFrom,
  generateText,
  LocalModel,
  type ChatOptions,
  type FinishReason,
  type GenerateOptions,
  type GenerationEvent,
  type GenerationStats,
  type GenerationStream,
  type InferenceSession,
  type LanguageModel,
  type LocalModelOptions,
  type OpenLocalModelOptions,
  type PromptOptions,
  type SamplingOptions,
  type ServerUsage,
} from './inference/index.js';

// The swarm: nodes, identities, private swarms, model ids.
export { createSwarmNode, type SwarmNode, type SwarmNodeOptions } from './swarm/node.js';
export { generateIdentity, loadOrCreateIdentity, type Identity } from './swarm/identity.js';
export { generatePsk, loadPsk, savePsk } from './swarm/psk.js';
export { modelIdOf } from './swarm/model-id.js';

// Client: a model whose blocks run on the swarm.
export { RemoteModel, type RemoteModelComponents, type RemoteModelEvents, type RemoteModelOptions } from './client/remote-model.js';

// Server: serve a span of blocks (or a whole model) to the swarm.
export { createBlockServer, type BlockServer, type BlockServerOptions } from './server/block-server.js';
export type { BlockServerComponents, BlockServerSettings } from './server/settings.js';
export type { BlockServerEvents } from './server/events.js';
export { rebalancing, wholeModelGeneration } from './server/services/index.js';
