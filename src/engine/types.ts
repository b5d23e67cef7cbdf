/**
 * The engine's contracts. A model is embeddings → blocks → final norm + LM head.
 * A `SpanExecutor` runs blocks [start, end) and owns the KV cache of every session open on it.
 * Hidden states cross these boundaries as row-major Float32Arrays of [tokens, hiddenSize].
 */
import type { BlockRange } from '../util/blocks.js';
import type { KvCacheType } from './kv-cache.js';

export type { BlockRange };

export interface EngineOptions {
  /** onnxruntime intra-op threads. */
  readonly threads?: number;
  /** 'cpu' (default) or 'cuda' where the CUDA execution provider is present. */
  readonly executionProvider?: 'cpu' | 'cuda';
  /**
   * Quantize activations to int8 inside quantized matmuls (onnxruntime accuracy level 4, as llama.cpp does): several
   * times faster. False keeps f32 activations (level 0), for exactness checks. Default true.
   */
  readonly quantizedActivations?: boolean;
  /**
   * Element type of the KV cache: 'f32' (default, exact) or 'f16' (as llama.cpp's default): half the memory, and
   * decode at long context, which reads the whole cache every step, runs faster.
   */
  readonly kvCacheType?: KvCacheType;
  /** Upper bound on KV-cache bytes across all sessions of this span; opening beyond it is refused. */
  readonly cacheBudgetBytes?: number;
  /**
   * Directory where weights are staged in a file while onnxruntime builds its sessions (removed right after; default
   * the OS temp directory). onnxruntime maps the file and keeps only its packed copy of each weight. Null hands the
   * weights over in memory, where the process keeps both copies (about twice the memory for f32 weights).
   */
  readonly stagingDir?: string | null;
}

export interface SessionInfo {
  readonly id: string;
  readonly maxLength: number;
  /** Tokens already in the cache: the position of the next token. */
  readonly position: number;
}

/** One decode or prefill step of one session. */
export interface SpanStep {
  readonly sessionId: string;
  /** [tokens, hiddenSize] row-major. */
  readonly hidden: Float32Array;
  /**
   * Position of the first token of `hidden`. Must equal the session's position, or be lower, which rewinds the
   * session first (replay after failover, speculative decoding).
   */
  readonly position?: number;
}

export interface SpanExecutor {
  readonly range: BlockRange;
  readonly hiddenSize: number;
  /** The model's context (tokens): no session may be longer. */
  readonly contextLength: number;
  /** Most tokens of one prefill graph call; a longer step runs as several. */
  readonly prefillChunkTokens: number;
  /**
   * Allocates a KV cache for up to `maxLength` tokens. Throws CacheBudgetError when it does not fit, ContextLengthError
   * when it is longer than the model's context.
   */
  openSession(id: string, maxLength: number): SessionInfo;
  closeSession(id: string): void;
  session(id: string): SessionInfo | undefined;
  /** Moves a session back to `position`; later cached tokens are forgotten. */
  rewind(id: string, position: number): void;
  /** Runs one step (prefill of many tokens, or a single-token decode) and returns the output hidden states. */
  step(step: SpanStep): Promise<Float32Array>;
  /** Runs several single-token decode steps of different sessions in one engine call. */
  stepBatch(steps: readonly SpanStep[]): Promise<Float32Array[]>;
  /** Stateless forward over the span: no cache kept (but one counts against the budget while it runs). Position 0 is the first row. */
  forward(hidden: Float32Array, tokens: number): Promise<Float32Array>;
  /** Bytes of KV cache per token in this span, and what is left of the budget. */
  readonly cacheBytesPerToken: number;
  cacheTokensLeft(): number;
  dispose(): Promise<void>;
}

/** Embeddings: token ids → hidden states. */
export interface Embeddings {
  embed(ids: readonly number[]): Float32Array;
}

/** Final norm + LM head: hidden states of the last token → logits over the vocabulary. */
export interface LmHead {
  /** `hidden` is [tokens, hiddenSize]; returns logits of the last row only. */
  logits(hidden: Float32Array): Promise<Float32Array>;
  /** Logits of several rows at once (one per batched session). */
  logitsBatch(rows: readonly Float32Array[]): Promise<Float32Array[]>;
}
