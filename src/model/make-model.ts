/**
 * Random-weight models at real shapes, written as GGUF v3 that llama.cpp loads: for benchmarks and tests where no
 * pretrained weights can be downloaded. Weights are deterministic in (seed, tensor name), so the same command
 * always writes the same file, whatever the chunking.
 *
 * Distribution (see defaultInit): linear weights ≈ N(0, 0.02) (wider for narrow models), q/k wider still, norm
 * weights ≈ 1 + N(0, 0.02). With these each block's output dominates the small embeddings and attention is peaked,
 * so greedy generation wanders through the vocabulary instead of echoing the input token or repeating one token
 * (checked with llama.cpp at all three shapes).
 * The "normal" is the sum of four uniform bytes (Irwin–Hall), rescaled: cheap, and its tails stop near 3.5σ, which
 * keeps quantization scales typical.
 *
 * Layout follows llama.cpp's converter and quantizer: norms stay F32; with a quantized dtype every 2-D weight
 * (token_embd included) is quantized, to the dtype or, for the Q4_K_M/Q5_K_M mixes, to the type llama-quantize
 * picks per tensor, with llama.cpp's fallbacks for rows the type's blocks do not divide (quant-mix.ts).
 * Llama 3 rope scaling is written as a `rope_freqs` tensor (llama.cpp asserts on an unknown
 * `rope.scaling.type`), exactly as convert_hf_to_gguf.py does.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { DEFAULT_MODEL_PATH } from './default-model.js';
import { MakeModelError } from './errors.js';
import { GgmlType, ggmlTypeOf } from './ggml-types.js';
import { GgufValueType, openGguf, type GgufValueTypeId } from './gguf.js';
import { gv, writeGguf, type GgufMetaValue, type GgufTensorSpec } from './gguf-writer.js';
import { encodeTensor } from './quant.js';
import { mixTensorType, type QuantScheme } from './quant-mix.js';
import { llama3RopeFactors } from './rope.js';
import type { RopeScaling, TensorType } from './types.js';
import { CHATML_TEMPLATE } from './tokenizer/chat-template.js';

/**
 * Bumped whenever the same (shape, dtype, seed) would produce different bytes, so caches of generated models can
 * key on it. Also written to the file as `corolla.random.version`.
 */
export const MAKE_MODEL_VERSION = 3;

/** A plain type, a single quantization type, or a llama.cpp mix (quant-mix.ts says which tensor gets what). */
export type MakeModelDtype = 'f32' | 'f16' | QuantScheme;
export const MAKE_MODEL_DTYPES: readonly MakeModelDtype[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k', 'q4_k_m', 'q5_k_m'];

export interface ModelShape {
  readonly name: string;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly intermediateSize: number;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly ropeTheta: number;
  readonly rmsNormEps: number;
  readonly ropeScaling?: RopeScaling;
  readonly tied: boolean;
  /**
   * 'smollm2': SmolLM2's byte-level BPE, read from a tokenizer.json given as `smollmTokenizerPath` (49152
   * tokens; padded with reserved tokens up to vocabSize). 'stories': the 512-token SentencePiece vocabulary of the
   * embedded stories260K model. 'none': no tokenizer.
   */
  readonly tokenizer: 'smollm2' | 'stories' | 'none';
  /**
   * GGUF architecture (default 'llama', which Llama 2/3, Mistral and SmolLM2 files use). 'qwen2' adds q/k/v biases
   * and rotates the two halves of each head.
   */
  readonly architecture?: ShapeArchitecture;
  /**
   * Written as `{arch}.attention.sliding_window`, as a Mistral v0.1 file could carry it. llama.cpp ignores the key
   * for the llama and qwen2 architectures (their loaders never read it), and so does our GGUF loader.
   */
  readonly slidingWindow?: number;
}

export type ShapeArchitecture = 'llama' | 'qwen2';

export const MODEL_SHAPES = {
  'smollm2-135m': {
    name: 'smollm2-135m', hiddenSize: 576, numLayers: 30, numHeads: 9, numKvHeads: 3, intermediateSize: 1536,
    vocabSize: 49152, contextLength: 8192, ropeTheta: 100000, rmsNormEps: 1e-5, tied: true, tokenizer: 'smollm2',
  },
  'llama-3.2-1b': {
    name: 'llama-3.2-1b', hiddenSize: 2048, numLayers: 16, numHeads: 32, numKvHeads: 8, intermediateSize: 8192,
    vocabSize: 128256, contextLength: 131072, ropeTheta: 500000, rmsNormEps: 1e-5, tied: true, tokenizer: 'smollm2',
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  },
  /** Rows that are whole 256-element super-blocks (every K type applies unchanged), with the stories vocabulary. */
  'stories-256': {
    name: 'stories-256', hiddenSize: 256, numLayers: 4, numHeads: 4, numKvHeads: 2, intermediateSize: 768,
    vocabSize: 512, contextLength: 1024, ropeTheta: 10000, rmsNormEps: 1e-5, tied: true, tokenizer: 'stories',
  },
  'stories-tiny': {
    name: 'stories-tiny', hiddenSize: 64, numLayers: 5, numHeads: 8, numKvHeads: 4, intermediateSize: 172,
    vocabSize: 512, contextLength: 512, ropeTheta: 10000, rmsNormEps: 1e-5, tied: true, tokenizer: 'stories',
  },
  // Tiny models of each architecture's shape (its GQA layout, RoPE base and scaling, biases, tied or not, window),
  // with the 512-token stories vocabulary: quick enough to run thousands of positions through both engines.
  'llama-2-tiny': {
    name: 'llama-2-tiny', hiddenSize: 64, numLayers: 6, numHeads: 4, numKvHeads: 4, intermediateSize: 192,
    vocabSize: 512, contextLength: 8192, ropeTheta: 10000, rmsNormEps: 1e-5, tied: false, tokenizer: 'stories',
  },
  'llama-3.2-tiny': {
    name: 'llama-3.2-tiny', hiddenSize: 64, numLayers: 6, numHeads: 4, numKvHeads: 2, intermediateSize: 192,
    vocabSize: 512, contextLength: 8192, ropeTheta: 500000, rmsNormEps: 1e-5, tied: true, tokenizer: 'stories',
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  },
  'mistral-tiny': {
    name: 'mistral-tiny', hiddenSize: 64, numLayers: 6, numHeads: 4, numKvHeads: 2, intermediateSize: 192,
    vocabSize: 512, contextLength: 8192, ropeTheta: 10000, rmsNormEps: 1e-5, tied: false, tokenizer: 'stories', slidingWindow: 32,
  },
  'qwen2.5-tiny': {
    name: 'qwen2.5-tiny', hiddenSize: 64, numLayers: 6, numHeads: 4, numKvHeads: 2, intermediateSize: 192,
    vocabSize: 512, contextLength: 8192, ropeTheta: 1000000, rmsNormEps: 1e-6, tied: true, tokenizer: 'stories', architecture: 'qwen2',
  },
} as const satisfies Record<string, ModelShape>;
export type ModelShapeName = keyof typeof MODEL_SHAPES;

export interface MakeModelOptions {
  readonly shape: ModelShapeName | ModelShape;
  readonly dtype: MakeModelDtype;
  readonly out: string;
  readonly seed?: number;
  /** SmolLM2's tokenizer.json, needed by shapes with the 'smollm2' tokenizer. */
  readonly smollmTokenizerPath?: string;
  readonly onProgress?: (done: number, total: number) => void;
  /** Standard deviations of the random weights (defaults: defaultInit(hiddenSize)). */
  readonly init?: Partial<RandomInit>;
}

export interface RandomInit {
  readonly embedStd: number;
  readonly weightStd: number;
  /**
   * q and k projections. Larger than weightStd so that attention scores have a standard deviation of about 6
   * (qkStd² × hiddenSize ≈ 5.8): attention is peaked and position-dependent, and greedy generation wanders
   * instead of repeating one token. Default 2.4 / √hiddenSize.
   */
  readonly qkStd: number;
  /** Norm weights are 1 + N(0, normStd). */
  readonly normStd: number;
}

/** The defaults, for a hidden size: N(0, 0.02) weights, widened for narrow models so blocks still dominate. */
export function defaultInit(hiddenSize: number): RandomInit {
  return {
    embedStd: 0.02,
    weightStd: Math.max(0.02, 0.48 / Math.sqrt(hiddenSize)),
    qkStd: 2.4 / Math.sqrt(hiddenSize),
    normStd: 0.02,
  };
}


/** Writes the model; returns the file size. */
export function makeModel(options: MakeModelOptions): { path: string; bytes: number } {
  const shape: ModelShape = typeof options.shape === 'string' ? MODEL_SHAPES[options.shape] : options.shape;
  if (!shape) throw new MakeModelError(`unknown shape "${String(options.shape)}" (known: ${Object.keys(MODEL_SHAPES).join(', ')})`);
  if (!MAKE_MODEL_DTYPES.includes(options.dtype)) throw new MakeModelError(`unknown dtype "${options.dtype}" (known: ${MAKE_MODEL_DTYPES.join(', ')})`);
  const seed = (options.seed ?? 0) >>> 0;
  const headDim = shape.hiddenSize / shape.numHeads;
  if (!Number.isInteger(headDim) || shape.numHeads % shape.numKvHeads !== 0) throw new MakeModelError(`inconsistent shape ${shape.name}`);

  const arch = shape.architecture ?? 'llama';
  const metadata: Array<[string, GgufMetaValue]> = [
    ['general.architecture', gv.str(arch)],
    ['general.name', gv.str(`corolla random ${shape.name}`)],
    ['general.file_type', gv.u32(FILE_TYPE[options.dtype])],
    ...(options.dtype !== 'f32' && options.dtype !== 'f16' ? [['general.quantization_version', gv.u32(2)] as [string, GgufMetaValue]] : []),
    ['general.alignment', gv.u32(32)],
    [`${arch}.vocab_size`, gv.u32(shape.vocabSize)],
    [`${arch}.context_length`, gv.u32(shape.contextLength)],
    [`${arch}.embedding_length`, gv.u32(shape.hiddenSize)],
    [`${arch}.block_count`, gv.u32(shape.numLayers)],
    [`${arch}.feed_forward_length`, gv.u32(shape.intermediateSize)],
    [`${arch}.rope.dimension_count`, gv.u32(headDim)],
    [`${arch}.attention.head_count`, gv.u32(shape.numHeads)],
    [`${arch}.attention.head_count_kv`, gv.u32(shape.numKvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(shape.rmsNormEps)],
    [`${arch}.rope.freq_base`, gv.f32(shape.ropeTheta)],
    ...architectureMetadata(shape, arch),
    ['corolla.random.version', gv.u32(MAKE_MODEL_VERSION)],
    ['corolla.random.seed', gv.u32(seed)],
    ['corolla.random.shape', gv.str(shape.name)],
    ...tokenizerMetadata(shape, options.smollmTokenizerPath),
  ];

  const init: RandomInit = { ...defaultInit(shape.hiddenSize), ...options.init };
  const tensors: GgufTensorSpec[] = [];
  const weight = (name: string, rows: number, cols: number, std = init.weightStd) =>
    tensors.push(randomTensor(`${name}.weight`, rows, cols, weightType(options.dtype, `${name}.weight`, cols, shape), seed, 0, std));
  const norm = (name: string, size: number) => tensors.push(randomTensor(`${name}.weight`, 1, size, 'f32', seed, 1, init.normStd));
  weight('token_embd', shape.vocabSize, shape.hiddenSize, init.embedStd);
  if (shape.ropeScaling) {
    const factors = llama3RopeFactors(headDim, shape.ropeTheta, shape.ropeScaling);
    tensors.push({ name: 'rope_freqs.weight', ggmlType: GgmlType.F32, dims: [factors.length], data: new Uint8Array(factors.buffer) });
  }
  norm('output_norm', shape.hiddenSize);
  if (!shape.tied) weight('output', shape.vocabSize, shape.hiddenSize);
  const q = shape.numHeads * headDim;
  const kv = shape.numKvHeads * headDim;
  for (let i = 0; i < shape.numLayers; i++) {
    const b = `blk.${i}.`;
    norm(b + 'attn_norm', shape.hiddenSize);
    weight(b + 'attn_q', q, shape.hiddenSize, init.qkStd);
    weight(b + 'attn_k', kv, shape.hiddenSize, init.qkStd);
    weight(b + 'attn_v', kv, shape.hiddenSize);
    weight(b + 'attn_output', shape.hiddenSize, q);
    tensors.push(...attentionBiases(shape, b, q, kv, seed, init.weightStd));
    norm(b + 'ffn_norm', shape.hiddenSize);
    weight(b + 'ffn_gate', shape.intermediateSize, shape.hiddenSize);
    weight(b + 'ffn_up', shape.intermediateSize, shape.hiddenSize);
    weight(b + 'ffn_down', shape.hiddenSize, shape.intermediateSize);
  }
  fs.mkdirSync(nodePath.dirname(nodePath.resolve(options.out)), { recursive: true });
  const bytes = writeGguf(options.out, { metadata, tensors, alignment: 32, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  return { path: options.out, bytes };
}

/** Metadata only some architectures' shapes carry. */
function architectureMetadata(shape: ModelShape, arch: ShapeArchitecture): Array<[string, GgufMetaValue]> {
  return shape.slidingWindow ? [[`${arch}.attention.sliding_window`, gv.u32(shape.slidingWindow)]] : [];
}

/**
 * Qwen2's q/k/v biases (F32, as llama.cpp's converter keeps 1-D tensors). Drawn wider than the weights, as trained
 * Qwen2 biases are large, so a wrong or missing bias moves the logits visibly.
 */
function attentionBiases(shape: ModelShape, block: string, q: number, kv: number, seed: number, std: number): GgufTensorSpec[] {
  if ((shape.architecture ?? 'llama') !== 'qwen2') return [];
  return [
    randomTensor(`${block}attn_q.bias`, 1, q, 'f32', seed, 0, 10 * std),
    randomTensor(`${block}attn_k.bias`, 1, kv, 'f32', seed, 0, 10 * std),
    randomTensor(`${block}attn_v.bias`, 1, kv, 'f32', seed, 0, 10 * std),
  ];
}

/** llama.cpp's LLAMA_FTYPE values (a single K type is written as the "_S" file type of its size). */
const FILE_TYPE: Record<MakeModelDtype, number> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q4_k: 14, q4_k_m: 15, q5_k: 16, q5_k_m: 17, q6_k: 18,
};

/** The stored type of a 2-D weight: the dtype itself, or llama.cpp's choice under a quantization scheme. */
function weightType(dtype: MakeModelDtype, name: string, cols: number, shape: ModelShape): TensorType {
  if (dtype === 'f32' || dtype === 'f16') return dtype;
  return mixTensorType(dtype, { name, cols, layers: shape.numLayers, hasOutput: !shape.tied });
}

/** A [rows, cols] tensor (GGUF dims [cols, rows]) generated and encoded in row chunks. */
function randomTensor(name: string, rows: number, cols: number, type: TensorType, seed: number, mean: number, std: number): GgufTensorSpec {
  const dims = rows === 1 ? [cols] : [cols, rows];
  return {
    name,
    ggmlType: ggmlTypeOf(type),
    dims,
    data: function* () {
      const rng = new Normalish(seed, name);
      const rowsPerChunk = Math.max(1, Math.floor((1 << 20) / cols));
      const buffer = new Float32Array(rowsPerChunk * cols);
      for (let r = 0; r < rows; r += rowsPerChunk) {
        const n = Math.min(rowsPerChunk, rows - r);
        const chunk = n === rowsPerChunk ? buffer : buffer.subarray(0, n * cols);
        rng.fill(chunk, mean, std);
        // encodeTensor returns a view for f32; it is written before the next chunk overwrites the buffer.
        yield encodeTensor(type, chunk);
      }
    },
  };
}

/** sfc32 seeded by (seed, name), turned into approximately normal values. */
class Normalish {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, name: string) {
    // FNV-1a of the name, mixed with the seed, spreads into the four state words.
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    this.a = seed | 0;
    this.b = h | 0;
    this.c = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) | 0;
    this.d = 1;
    for (let i = 0; i < 16; i++) this.next();
  }

  private next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t;
  }

  /** Fills `out` with mean + std × (sum of 4 uniform bytes, standardised). */
  fill(out: Float32Array, mean: number, std: number): void {
    // Sum of four U{0..255}: mean 510, variance 4 × (256² − 1) / 12.
    const scale = std / Math.sqrt((4 * (256 * 256 - 1)) / 12);
    // sfc32 inlined on locals: this loop produces every weight of a multi-GB model.
    let a = this.a, b = this.b, c = this.c, d = this.d;
    for (let i = 0; i < out.length; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      const s = (t & 0xff) + ((t >>> 8) & 0xff) + ((t >>> 16) & 0xff) + (t >>> 24);
      out[i] = mean + (s - 510) * scale;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }
}

function tokenizerMetadata(shape: ModelShape, smollmTokenizerPath: string | undefined): Array<[string, GgufMetaValue]> {
  if (shape.tokenizer === 'none') return [];
  if (shape.tokenizer === 'stories') return storiesTokenizer(shape);
  if (!smollmTokenizerPath) throw new MakeModelError(`shape ${shape.name} needs SmolLM2's tokenizer.json (smollmTokenizerPath, or --tokenizer FILE)`);
  return smollmTokenizer(shape, smollmTokenizerPath);
}

/** The embedded stories260K GGUF's own tokenizer.* metadata, copied with its value types. */
function storiesTokenizer(shape: ModelShape): Array<[string, GgufMetaValue]> {
  const g = openGguf(DEFAULT_MODEL_PATH);
  try {
    const out: Array<[string, GgufMetaValue]> = [];
    for (const [key, value] of g.metadata) {
      if (!key.startsWith('tokenizer.')) continue;
      const t = g.metadataTypes.get(key)!;
      out.push([key, { type: t.type, value, ...(t.elementType !== undefined ? { elementType: t.elementType } : {}) }]);
    }
    const tokens = g.metadata.get('tokenizer.ggml.tokens') as string[];
    if (tokens.length !== shape.vocabSize) throw new MakeModelError(`the stories tokenizer has ${tokens.length} tokens, shape ${shape.name} wants ${shape.vocabSize}`);
    return out;
  } finally {
    g.close();
  }
}

interface TokenizerJson {
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  model?: { type?: string; vocab?: Record<string, number>; merges?: Array<string | [string, string]> };
}

/** SmolLM2's tokenizer.json as a GGUF "gpt2" BPE tokenizer with pre-tokenizer "smollm". */
function smollmTokenizer(shape: ModelShape, path: string): Array<[string, GgufMetaValue]> {
  let json: TokenizerJson;
  try {
    json = JSON.parse(fs.readFileSync(path, 'utf8')) as TokenizerJson;
  } catch (error) {
    throw new MakeModelError(`cannot read the SmolLM2 tokenizer at ${path}`, { cause: error });
  }
  const vocab = json.model?.vocab;
  if (json.model?.type !== 'BPE' || !vocab) throw new MakeModelError(`${path} is not a BPE tokenizer.json`);
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [text, id] of Object.entries(vocab)) {
    tokens[id] = text;
    types[id] = 1; // normal
  }
  for (const t of json.added_tokens ?? []) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? 3 : 4; // control : user-defined
  }
  const base = tokens.length;
  if (base > shape.vocabSize) throw new MakeModelError(`the SmolLM2 tokenizer has ${base} tokens, more than shape ${shape.name}'s ${shape.vocabSize}`);
  for (let id = 0; id < base; id++) {
    if (tokens[id] === undefined) throw new MakeModelError(`${path} has no token with id ${id}`);
  }
  // Pad to the model's vocabulary with unused reserved tokens, as Llama 3 does.
  for (let id = base; id < shape.vocabSize; id++) {
    tokens.push(`<|reserved_${id - base}|>`);
    types.push(5);
  }
  const merges = (json.model.merges ?? []).map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  const idOf = (text: string): number => {
    const id = tokens.indexOf(text);
    if (id < 0) throw new MakeModelError(`${path} has no ${text} token`);
    return id;
  };
  const arr = (elementType: GgufValueTypeId, values: ArrayLike<unknown>) => gv.arr(elementType, values);
  return [
    ['tokenizer.ggml.model', gv.str('gpt2')],
    ['tokenizer.ggml.pre', gv.str('smollm')],
    ['tokenizer.ggml.tokens', arr(GgufValueType.STRING, tokens)],
    ['tokenizer.ggml.token_type', arr(GgufValueType.INT32, Int32Array.from(types))],
    ['tokenizer.ggml.merges', arr(GgufValueType.STRING, merges)],
    ['tokenizer.ggml.bos_token_id', gv.u32(idOf('<|im_start|>'))],
    ['tokenizer.ggml.eos_token_id', gv.u32(idOf('<|im_end|>'))],
    ['tokenizer.ggml.unknown_token_id', gv.u32(idOf('<|endoftext|>'))],
    ['tokenizer.ggml.padding_token_id', gv.u32(idOf('<|im_end|>'))],
    ['tokenizer.ggml.add_bos_token', gv.bool(false)],
    ['tokenizer.chat_template', gv.str(CHATML_TEMPLATE)],
  ];
}
