/**
 * The contracts between model formats, tokenizers and the engine. Every format loader (GGUF, Hugging Face
 * safetensors, llama2.c) produces a `ModelSource`; the engine only ever sees this interface.
 */

/** Storage types of a weight tensor. Quantized types keep GGUF's block layouts byte for byte. */
export type TensorType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k';

/**
 * One weight tensor. `shape` is row-major in PyTorch order: a linear layer is [outFeatures, inFeatures] and each
 * row of `inFeatures` values (or quant blocks) is contiguous in `data`, which is exactly GGUF's and safetensors'
 * layout. `data` is the raw stored bytes: quantized tensors stay quantized.
 */
export interface WeightTensor {
  readonly name: CanonicalTensorName;
  readonly type: TensorType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/**
 * Canonical tensor names follow GGUF's: `token_embd`, `output_norm`, `output` (absent when tied),
 * and per block `blk.{i}.{attn_norm|attn_q|attn_k|attn_v|attn_output|ffn_norm|ffn_gate|ffn_up|ffn_down}`, plus
 * `blk.{i}.attn_{q,k,v}.bias` for models with attention biases (Qwen2). Weight names carry no `.weight` suffix.
 */
export type CanonicalTensorName = string;

export interface RopeScaling {
  /** Llama 3.1+ frequency-dependent scaling. */
  readonly type: 'llama3';
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  /** Architecture family as the file named it (llama, mistral, qwen2, ...). All run on the Llama graph. */
  readonly architecture: string;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling?: RopeScaling;
  /**
   * True when q/k rotate adjacent pairs (GGUF "llama" and Meta checkpoints, llama2.c); false when they rotate
   * the two halves of each head (Hugging Face checkpoints, GGUF "qwen2").
   */
  readonly ropeInterleaved: boolean;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** Qwen2 has biases on q, k and v projections. */
  readonly attentionBias: boolean;
  /**
   * Sliding-window attention (Mistral v0.1): a query at position p attends keys at positions p - slidingWindow + 1
   * through p. Absent: full causal attention.
   */
  readonly slidingWindow?: number;
}

/** A loaded (but lazily read) model: configuration, tokenizer data and tensors on demand. */
export interface ModelSource {
  /** Where it came from, for messages. */
  readonly location: string;
  readonly format: 'gguf' | 'safetensors' | 'llama2c';
  readonly config: ModelConfig;
  /** Everything needed to build a tokenizer, or undefined when the file carries none. */
  readonly tokenizer?: TokenizerData;
  /** Names of all tensors present, canonical. */
  tensorNames(): CanonicalTensorName[];
  /** Reads one tensor from storage. Reads only that tensor's bytes, so a span loads only its own weights. */
  readTensor(name: CanonicalTensorName): WeightTensor;
  /**
   * Reads rows [start, start + count) of a tensor (rows run along its last dimension), and only their bytes: the
   * embeddings read the rows they look up instead of holding the table. Sources that cannot read part of a tensor
   * leave it out.
   */
  readTensorRows?(name: CanonicalTensorName, start: number, count: number): WeightTensor;
  /** Releases file handles. */
  close(): void;
}

/**
 * Format-neutral tokenizer description, filled from GGUF metadata, tokenizer.json, or a llama2.c tokenizer.bin.
 */
export type TokenizerData =
  | {
      readonly kind: 'sentencepiece';
      readonly tokens: readonly string[];
      readonly scores: readonly number[];
      /** GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
      readonly tokenTypes?: readonly number[];
      readonly special: SpecialTokens;
      readonly chatTemplate?: string;
      /** SentencePiece prepends a space ("▁") to the input, as llama does. */
      readonly addSpacePrefix: boolean;
    }
  | {
      readonly kind: 'bpe';
      readonly tokens: readonly string[];
      readonly merges: readonly string[];
      readonly tokenTypes?: readonly number[];
      /** GGUF `tokenizer.ggml.pre`, e.g. "llama-bpe", "smollm", "qwen2", "default". */
      readonly preTokenizer?: string;
      readonly special: SpecialTokens;
      readonly chatTemplate?: string;
    }
  | {
      /** A Hugging Face tokenizer.json (+ tokenizer_config.json), run by @huggingface/tokenizers. */
      readonly kind: 'hf';
      readonly tokenizerJson: unknown;
      readonly tokenizerConfig?: Record<string, unknown>;
      readonly special: SpecialTokens;
      readonly chatTemplate?: string;
    }
  | {
      /** llama2.c's tokenizer.bin: scores and pieces, BPE merges by score. */
      readonly kind: 'llama2c';
      readonly tokens: readonly string[];
      readonly scores: readonly number[];
      readonly maxTokenLength: number;
      readonly special: SpecialTokens;
    };

export interface SpecialTokens {
  readonly bos?: number;
  readonly eos: readonly number[];
  readonly pad?: number;
  readonly unk?: number;
  /** Whether encode() should prepend BOS by default (GGUF tokenizer.ggml.add_bos_token). */
  readonly addBos: boolean;
}

/** What every tokenizer offers, whatever its origin. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly special: SpecialTokens;
  readonly chatTemplate?: string;
  /** Encodes text. `addBos` defaults to `special.addBos`. Special-token strings in text map to their ids. */
  encode(text: string, options?: { addBos?: boolean }): number[];
  /** Decodes ids to text; special/control tokens are skipped unless `keepSpecial`. */
  decode(ids: readonly number[], options?: { keepSpecial?: boolean }): string;
  /** A stateful decoder that turns a stream of ids into text deltas, holding back incomplete UTF-8. */
  streamDecoder(options?: { context?: readonly number[] }): StreamDecoder;
  /** The token's text as stored in the vocabulary (for stop-token and debug display). */
  idToToken(id: number): string | undefined;
}

export interface StreamDecoder {
  /** Feeds one id and returns the newly completed text (possibly empty). */
  push(id: number): string;
  /** Returns any text still held back. */
  flush(): string;
}

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant' | string;
  readonly content: string;
}
