/**
 * What every generation runs on: a model that opens sessions turning token ids into logits. The local whole model
 * (local-model.ts) and the swarm client (client/RemoteModel) both implement it, so one generation loop
 * (generate.ts) and one chat (chat.ts) serve both.
 */
import type { ModelConfig, Tokenizer } from '../model/types.js';
import type { BlockRange } from '../util/blocks.js';

/** Options of one step. */
export interface StepOptions {
  /** The ids were sampled by the generation loop (attributed as generated, not prompt, tokens). */
  readonly sampled?: boolean;
}

/** Which server computed which blocks of a session, for how many tokens. */
export interface ServerUsage {
  readonly peerId: string;
  readonly blocks: BlockRange;
  /** Tokens of prompts (ids given by the caller) this server computed. */
  promptTokens: number;
  /** Sampled tokens this server computed. */
  generatedTokens: number;
  /** Tokens re-sent to this server to rebuild the cache of a failed one (not in the counts above). */
  replayedTokens: number;
  /** True once the server failed in this session (its counts stop at the failure). */
  failed: boolean;
}

/** A stateful sequence whose cache grows by the ids fed to it. */
export interface InferenceSession {
  /** Appends `ids` at the current position and returns the logits after the last one. */
  next(ids: readonly number[], options?: StepOptions): Promise<Float32Array>;
  /**
   * Appends `ids` and returns the logits after each of them, one row per id, from one forward pass (speculative
   * decoding verifies its proposals with it). Sessions without it decode without speculation.
   */
  nextRows?(ids: readonly number[], options?: StepOptions): Promise<Float32Array[]>;
  /**
   * Forgets every token from `position` on (0 ≤ position ≤ tokens held): the next step appends there. Servers rewind
   * their caches when that step reaches them.
   */
  rewind?(position: number): Promise<void>;
  close(): Promise<void>;
  /** Per-server attribution so far (sessions that run on servers). */
  usage?(): ServerUsage[];
}

export interface OpenSessionOptions {
  /** Aborts opening and any step in flight. */
  readonly signal?: AbortSignal;
}

export interface LanguageModel {
  readonly tokenizer: Tokenizer;
  readonly config: ModelConfig;
  /** Opens a session for up to `maxLength` tokens (prompt and generated). */
  openSession(maxLength: number, options?: OpenSessionOptions): Promise<InferenceSession>;
  close(): Promise<void>;
}
