/** The inference layer: the LanguageModel interface, the one generation loop, sampling, chat, the local model. */
export * from './errors.js';
export * from './sampling/index.js';
export { DEFAULT_CHAT_CONTEXT, DEFAULT_CHAT_MAX_TOKENS, DEFAULT_MAX_TOKENS, DEFAULT_SAMPLING } from './defaults.js';
export type { InferenceSession, LanguageModel, OpenSessionOptions, ServerUsage, StepOptions } from './language-model.js';
export {
  emptyStats,
  generate,
  generateFrom,
  generateText,
  promptIds,
  TextStream,
  type FinishReason,
  type GenerateOptions,
  type GenerationEvent,
  type GenerationStats,
  type GenerationStream,
  type PromptOptions,
} from './generate.js';
export { NgramProposer, type Proposer, type SpeculationStats, type SpeculativeOptions } from './speculative.js';
export { Chat, type ChatOptions } from './chat.js';
export { loadLocalModel, LocalModel, type LocalModelOptions, type OpenLocalModelOptions } from './local-model.js';
