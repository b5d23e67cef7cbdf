/**
 * A ModelSource over a GGUF file: llama.cpp's metadata keys become a ModelConfig, `tokenizer.ggml.*` becomes
 * TokenizerData, and tensors are read one at a time on demand.
 *
 * Conventions: canonical names are GGUF's without the `.weight` suffix (biases keep `.bias`); shapes are
 * reversed from GGUF's ne order, so a linear layer stored as [ne0 = in, ne1 = out] is exposed as [out, in] —
 * the bytes are the same, only the description changes.
 */
import { checkConfig, SUPPORTED_ARCHITECTURES, verifyTensorShapes } from './config.js';
import { CorruptModelError, MissingTensorError, UnsupportedArchitectureError, UnsupportedQuantizationError } from './errors.js';
import { rowBytes } from './quant.js';
import { metaBool, metaNumber, metaString, openGguf, type GgufFile, type GgufTensorInfo } from './gguf.js';
import type { CanonicalTensorName, ModelConfig, ModelSource, RopeScaling, SpecialTokens, TokenizerData, WeightTensor } from './types.js';

/** A GGUF-backed source; `files` and `gguf` are extras beyond ModelSource for fingerprinting and debugging. */
export interface GgufModelSource extends ModelSource {
  readonly format: 'gguf';
  readonly files: readonly string[];
  readonly gguf: GgufFile;
  /** The ggml type name of a tensor as stored ("Q8_0", "F32"...), for messages and stats. */
  storedType(name: CanonicalTensorName): string | undefined;
}

/** Architectures whose GGUF q/k weights rotate adjacent pairs (llama.cpp's LLAMA_ROPE_TYPE_NORM). */
const INTERLEAVED_ROPE = new Set(['llama', 'mistral', 'smollm']);

export function canonicalGgufName(stored: string): CanonicalTensorName {
  return stored.endsWith('.weight') ? stored.slice(0, -'.weight'.length) : stored;
}

export function openGgufSource(path: string): GgufModelSource {
  const gguf = openGguf(path);
  try {
    return buildSource(gguf);
  } catch (error) {
    gguf.close();
    throw error;
  }
}

function buildSource(gguf: GgufFile): GgufModelSource {
  const m = gguf.metadata;
  const location = gguf.path;
  const architecture = metaString(m, 'general.architecture');
  if (!architecture) throw new MissingTensorError(`metadata key "general.architecture" (in ${location})`);
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(architecture)) throw new UnsupportedArchitectureError(architecture);

  const byCanonical = new Map<CanonicalTensorName, GgufTensorInfo>();
  for (const t of gguf.tensors) {
    const name = canonicalGgufName(t.name);
    if (byCanonical.has(name)) throw new CorruptModelError(location, `tensors "${byCanonical.get(name)!.name}" and "${t.name}" collide`);
    byCanonical.set(name, t);
  }
  const shapeOf = (t: GgufTensorInfo): number[] => [...t.dims].reverse();

  const tokenizer = readTokenizer(m, location);
  const config = readConfig(m, architecture, location, byCanonical, tokenizer);
  checkConfig(location, config);
  verifyTensorShapes(location, config, new Map([...byCanonical].map(([name, t]) => [name, shapeOf(t)])));

  /** A tensor's header entry, for a tensor that is present and of a type we run. */
  const runnable = (name: CanonicalTensorName) => {
    const t = byCanonical.get(name);
    if (!t) throw new MissingTensorError(`tensor "${name}" (in ${location})`);
    if (!t.type) throw new UnsupportedQuantizationError(t.name, t.typeName);
    return { t, type: t.type };
  };

  return {
    location,
    format: 'gguf',
    files: [gguf.path],
    gguf,
    config,
    tokenizer,
    tensorNames: () => [...byCanonical.keys()],
    storedType: (name) => byCanonical.get(name)?.typeName,
    readTensor(name: CanonicalTensorName): WeightTensor {
      const { t, type } = runnable(name);
      return { name, type, shape: shapeOf(t), data: gguf.readTensorBytes(t.name) };
    },
    readTensorRows(name: CanonicalTensorName, start: number, count: number): WeightTensor {
      const { t, type } = runnable(name);
      const rows = rowBytes({ name, type, shape: shapeOf(t) }, start, count);
      return { name, type, shape: rows.shape, data: gguf.readTensorRange(t.name, rows.start, rows.length) };
    },
    close: () => gguf.close(),
  };
}

function readConfig(
  m: Map<string, unknown>,
  arch: string,
  location: string,
  tensors: Map<CanonicalTensorName, GgufTensorInfo>,
  tokenizer: TokenizerData | undefined,
): ModelConfig {
  const required = (key: string): number => {
    const v = metaNumber(m, `${arch}.${key}`);
    if (v === undefined) throw new MissingTensorError(`metadata key "${arch}.${key}" (in ${location})`);
    return v;
  };
  const optional = (key: string): number | undefined => metaNumber(m, `${arch}.${key}`);

  const expertCount = optional('expert_count');
  if (expertCount !== undefined && expertCount > 0) throw new UnsupportedArchitectureError(`${arch} (mixture of experts, ${expertCount} experts)`);

  const hiddenSize = required('embedding_length');
  const numHeads = required('attention.head_count');
  // head_count_kv may be an array (one per layer) in some hybrid models; only a uniform value is supported.
  const kvRaw = m.get(`${arch}.attention.head_count_kv`);
  let numKvHeads = numHeads;
  if (typeof kvRaw === 'number') numKvHeads = kvRaw;
  else if (kvRaw !== undefined && ArrayBuffer.isView(kvRaw)) {
    const values = Array.from(kvRaw as unknown as ArrayLike<number>, Number);
    if (values.length === 0 || values.some((v) => v !== values[0])) throw new UnsupportedArchitectureError(`${arch} with per-layer KV head counts`);
    numKvHeads = values[0]!;
  }
  const headDim = optional('attention.key_length') ?? hiddenSize / numHeads;
  const valueLength = optional('attention.value_length');
  if (valueLength !== undefined && valueLength !== headDim) throw new UnsupportedArchitectureError(`${arch} with key length ${headDim} ≠ value length ${valueLength}`);
  const ropeDims = optional('rope.dimension_count');
  if (ropeDims !== undefined && ropeDims !== headDim) throw new UnsupportedArchitectureError(`${arch} with partial rotary embeddings (${ropeDims} of ${headDim} dims)`);

  const embd = tensors.get('token_embd');
  const vocabSize = optional('vocab_size') ?? (embd ? embd.dims[1] ?? 0 : tokenizer && 'tokens' in tokenizer ? tokenizer.tokens.length : 0);

  const ropeScaling = readRopeScaling(m, arch, location);
  const attentionBias = tensors.has('blk.0.attn_q.bias');
  return {
    architecture: arch,
    hiddenSize,
    intermediateSize: required('feed_forward_length'),
    numLayers: required('block_count'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps: required('attention.layer_norm_rms_epsilon'),
    ropeTheta: optional('rope.freq_base') ?? 10000,
    ...(ropeScaling ? { ropeScaling } : {}),
    ropeInterleaved: INTERLEAVED_ROPE.has(arch),
    maxPositionEmbeddings: optional('context_length') ?? 2048,
    tieWordEmbeddings: !tensors.has('output'),
    attentionBias,
  };
}

/**
 * Rope scaling from metadata. llama.cpp itself writes Llama 3.1 scaling as a `rope_freqs` tensor (exposed as a
 * tensor, see rope.ts), and asserts on an unknown `rope.scaling.type`, so the "llama3" metadata form here is only
 * found in files written by other tools. "none", and "linear" with factor 1, mean no scaling.
 */
function readRopeScaling(m: Map<string, unknown>, arch: string, location: string): RopeScaling | undefined {
  const type = metaString(m, `${arch}.rope.scaling.type`);
  const factor = metaNumber(m, `${arch}.rope.scaling.factor`);
  if (type === undefined || type === 'none') {
    if (factor !== undefined && factor !== 0 && factor !== 1) throw new UnsupportedArchitectureError(`${arch} with linear rope scaling (factor ${factor})`);
    return undefined;
  }
  if (type === 'linear' && (factor === undefined || factor === 0 || factor === 1)) return undefined;
  if (type !== 'llama3') throw new UnsupportedArchitectureError(`${arch} with "${type}" rope scaling`);
  const get = (key: string): number => {
    const v = metaNumber(m, `${arch}.rope.scaling.${key}`);
    if (v === undefined) throw new MissingTensorError(`metadata key "${arch}.rope.scaling.${key}" (in ${location})`);
    return v;
  };
  return {
    type: 'llama3',
    factor: get('factor'),
    lowFreqFactor: get('low_freq_factor'),
    highFreqFactor: get('high_freq_factor'),
    originalMaxPositionEmbeddings: get('original_context_length'),
  };
}

function readTokenizer(m: Map<string, unknown>, location: string): TokenizerData | undefined {
  const model = metaString(m, 'tokenizer.ggml.model');
  const tokensRaw = m.get('tokenizer.ggml.tokens');
  if (model === undefined || !Array.isArray(tokensRaw)) return undefined;
  if (model !== 'llama' && model !== 'gpt2') return undefined; // bert, t5, rwkv...: no tokenizer we run
  const tokens = tokensRaw as string[];
  const n = tokens.length;
  const numbers = (key: string): number[] | undefined => {
    const v = m.get(key);
    if (v === undefined) return undefined;
    if (!ArrayBuffer.isView(v) || (v as unknown as ArrayLike<number>).length !== n) {
      throw new CorruptModelError(location, `${key} must be a numeric array of ${n} entries`);
    }
    return Array.from(v as unknown as ArrayLike<number>, Number);
  };
  // Absent ids are often written as -1 (0xFFFFFFFF as u32); anything outside the vocabulary means "none".
  const id = (key: string): number | undefined => {
    const v = metaNumber(m, key);
    return v !== undefined && Number.isInteger(v) && v >= 0 && v < n ? v : undefined;
  };
  const eos: number[] = [];
  for (const key of ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) {
    const v = id(key);
    if (v !== undefined && !eos.includes(v)) eos.push(v);
  }
  const bos = id('tokenizer.ggml.bos_token_id');
  const pad = id('tokenizer.ggml.padding_token_id');
  const unk = id('tokenizer.ggml.unknown_token_id');
  const special: SpecialTokens = {
    ...(bos !== undefined ? { bos } : {}),
    eos,
    ...(pad !== undefined ? { pad } : {}),
    ...(unk !== undefined ? { unk } : {}),
    addBos: metaBool(m, 'tokenizer.ggml.add_bos_token') ?? model === 'llama',
  };
  const chatTemplate = metaString(m, 'tokenizer.chat_template');
  const tokenTypes = numbers('tokenizer.ggml.token_type');
  if (model === 'llama') {
    return {
      kind: 'sentencepiece',
      tokens,
      scores: numbers('tokenizer.ggml.scores') ?? new Array<number>(n).fill(0),
      ...(tokenTypes ? { tokenTypes } : {}),
      special,
      ...(chatTemplate !== undefined ? { chatTemplate } : {}),
      addSpacePrefix: metaBool(m, 'tokenizer.ggml.add_space_prefix') ?? true,
    };
  }
  const merges = m.get('tokenizer.ggml.merges');
  if (merges !== undefined && !Array.isArray(merges)) throw new CorruptModelError(location, 'tokenizer.ggml.merges must be a string array');
  const preTokenizer = metaString(m, 'tokenizer.ggml.pre');
  return {
    kind: 'bpe',
    tokens,
    merges: (merges as string[] | undefined) ?? [],
    ...(tokenTypes ? { tokenTypes } : {}),
    ...(preTokenizer !== undefined ? { preTokenizer } : {}),
    special,
    ...(chatTemplate !== undefined ? { chatTemplate } : {}),
  };
}
