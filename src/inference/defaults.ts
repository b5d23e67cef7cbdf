/** Generation defaults, in one place: the CLI's flags and usage text are built from them. */
import type { SamplingOptions } from './sampling/index.js';

/** What `corolla generate` / `chat` sample with when no flag says otherwise (llama.cpp's defaults). */
export const DEFAULT_SAMPLING = {
  temperature: 0.8,
  topP: 0.95,
  topK: 40,
  minP: 0.05,
} as const satisfies SamplingOptions;

/** Tokens generated when the caller gives no limit. */
export const DEFAULT_MAX_TOKENS = 256;
/** Tokens of one chat reply. */
export const DEFAULT_CHAT_MAX_TOKENS = 512;
/** Tokens a chat conversation may hold before it restarts. */
export const DEFAULT_CHAT_CONTEXT = 4096;
/** Tokens proposed per speculative step: one step then yields up to this many + 1 tokens. */
export const DEFAULT_SPECULATIVE_TOKENS = 4;
/** Longest suffix the n-gram proposer matches (prompt lookup's usual 3). */
export const DEFAULT_SPECULATIVE_MAX_NGRAM = 3;
