/**
 * A ModelSource over a Hugging Face model directory: config.json, model.safetensors (or an index and shards),
 * tokenizer.json + tokenizer_config.json (+ generation_config.json, chat_template.jinja).
 *
 * Hugging Face checkpoints store q/k projections un-permuted, so RoPE rotates the two halves of each head
 * (ropeInterleaved false). Tensor names are mapped to GGUF-style canonical names; tensors we do not use (e.g. old
 * `rotary_emb.inv_freq` buffers) are not exposed.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { checkConfig, verifyTensorShapes } from './config.js';
import { CorruptModelError, MissingTensorError, ModelNotFoundError, UnsupportedArchitectureError, UnsupportedQuantizationError } from './errors.js';
import { rowBytes } from './quant.js';
import { openSafetensors, type SafetensorsFile, type SafetensorsTensorInfo } from './safetensors.js';
import type { CanonicalTensorName, ModelConfig, ModelSource, RopeScaling, SpecialTokens, TokenizerData, WeightTensor } from './types.js';

export interface HfModelSource extends ModelSource {
  readonly format: 'safetensors';
  /** The safetensors files, in name order. */
  readonly files: readonly string[];
}

/** config.json `architectures[0]` → the model family name we report (ModelConfig.architecture). */
const ARCHITECTURES: Record<string, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

/** Hugging Face per-layer tensor names (after `model.layers.{i}.`) → our canonical suffixes. */
export const HF_LAYER_NAMES: Readonly<Record<string, string>> = {
  'input_layernorm.weight': 'attn_norm',
  'self_attn.q_proj.weight': 'attn_q',
  'self_attn.k_proj.weight': 'attn_k',
  'self_attn.v_proj.weight': 'attn_v',
  'self_attn.o_proj.weight': 'attn_output',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'post_attention_layernorm.weight': 'ffn_norm',
  'mlp.gate_proj.weight': 'ffn_gate',
  'mlp.up_proj.weight': 'ffn_up',
  'mlp.down_proj.weight': 'ffn_down',
};

/** Maps a Hugging Face Llama-family tensor name to our canonical name, or undefined for tensors we ignore. */
export function canonicalHfName(name: string): CanonicalTensorName | undefined {
  if (name === 'model.embed_tokens.weight') return 'token_embd';
  if (name === 'model.norm.weight') return 'output_norm';
  if (name === 'lm_head.weight') return 'output';
  const match = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (match) {
    const suffix = HF_LAYER_NAMES[match[2]!];
    if (suffix) return `blk.${Number(match[1])}.${suffix}`;
  }
  return undefined;
}

function readJson(path: string, required: boolean): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      if (required) throw new ModelNotFoundError(path, { cause: error });
      return undefined;
    }
    throw error;
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (error) {
    throw new CorruptModelError(path, 'invalid JSON', { cause: error });
  }
}

export function openHfSource(dir: string): HfModelSource {
  if (!fs.existsSync(dir)) throw new ModelNotFoundError(dir);
  const configPath = nodePath.join(dir, 'config.json');
  const raw = readJson(configPath, true)!;
  const config = readHfConfig(raw, configPath);
  checkConfig(configPath, config);

  // Weights: one file, or an index naming the shard of each tensor.
  const single = nodePath.join(dir, 'model.safetensors');
  const indexPath = nodePath.join(dir, 'model.safetensors.index.json');
  let shardNames: string[];
  if (fs.existsSync(single)) shardNames = ['model.safetensors'];
  else if (fs.existsSync(indexPath)) {
    const index = readJson(indexPath, true)!;
    const weightMap = index.weight_map;
    if (!weightMap || typeof weightMap !== 'object') throw new CorruptModelError(indexPath, 'no weight_map');
    const names = new Set<string>();
    for (const file of Object.values(weightMap as Record<string, unknown>)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\') || file.startsWith('.')) {
        throw new CorruptModelError(indexPath, `bad shard file name ${JSON.stringify(file)}`);
      }
      names.add(file);
    }
    shardNames = [...names].sort();
  } else {
    throw new ModelNotFoundError(`weights in ${dir} (no model.safetensors or model.safetensors.index.json)`);
  }

  const shards: SafetensorsFile[] = [];
  try {
    for (const name of shardNames) shards.push(openSafetensors(nodePath.join(dir, name)));
    return build(dir, config, shards);
  } catch (error) {
    for (const s of shards) s.close();
    throw error;
  }
}

function build(dir: string, baseConfig: ModelConfig, shards: SafetensorsFile[]): HfModelSource {
  const tensors = new Map<CanonicalTensorName, { info: SafetensorsTensorInfo; file: SafetensorsFile }>();
  for (const file of shards) {
    for (const info of file.tensors.values()) {
      const name = canonicalHfName(info.name);
      if (!name) continue;
      if (tensors.has(name)) throw new CorruptModelError(file.path, `tensor "${info.name}" appears in more than one shard`);
      tensors.set(name, { info, file });
    }
  }
  // Tied models may still ship lm_head; Transformers ties regardless, so we drop it. Some configs omit
  // tie_word_embeddings although the checkpoint has no lm_head; the files are the truth there.
  let config = baseConfig;
  if (!config.tieWordEmbeddings && !tensors.has('output')) config = { ...config, tieWordEmbeddings: true };
  if (config.tieWordEmbeddings) tensors.delete('output');
  const embd = tensors.get('token_embd');
  if (embd && embd.info.shape[0] !== config.vocabSize) {
    throw new CorruptModelError(dir, `embed_tokens has ${embd.info.shape[0]} rows, config.json says vocab_size ${config.vocabSize}`);
  }
  verifyTensorShapes(dir, config, new Map([...tensors].map(([name, t]) => [name, t.info.shape])));
  const tokenizer = readHfTokenizer(dir);

  /** A tensor's shard entry, for a tensor that is present and of a type we run. */
  const runnable = (name: CanonicalTensorName) => {
    const t = tensors.get(name);
    if (!t) throw new MissingTensorError(`tensor "${name}" (in ${dir})`);
    if (!t.info.type) throw new UnsupportedQuantizationError(t.info.name, t.info.dtype);
    return { t, type: t.info.type };
  };

  return {
    location: dir,
    format: 'safetensors',
    files: shards.map((s) => s.path),
    config,
    ...(tokenizer ? { tokenizer } : {}),
    tensorNames: () => [...tensors.keys()],
    readTensor(name: CanonicalTensorName): WeightTensor {
      const { t, type } = runnable(name);
      return { name, type, shape: t.info.shape, data: t.file.readTensorBytes(t.info.name) };
    },
    readTensorRows(name: CanonicalTensorName, start: number, count: number): WeightTensor {
      const { t, type } = runnable(name);
      const rows = rowBytes({ name, type, shape: t.info.shape }, start, count);
      return { name, type, shape: rows.shape, data: t.file.readTensorRange(t.info.name, rows.start, rows.length) };
    },
    close() {
      for (const s of shards) s.close();
    },
  };
}

/** Reads a Llama-family config.json into a ModelConfig. */
export function readHfConfig(raw: Record<string, unknown>, location: string): ModelConfig {
  const archs = raw.architectures;
  const archName = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : typeof raw.model_type === 'string' ? raw.model_type : 'unknown';
  const architecture = ARCHITECTURES[archName];
  if (!architecture) throw new UnsupportedArchitectureError(archName);

  const num = (key: string, fallback?: number): number => {
    const v = raw[key];
    if (typeof v === 'number') return v;
    if (fallback !== undefined) return fallback;
    throw new MissingTensorError(`config key "${key}" (in ${location})`);
  };
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'silu') throw new UnsupportedArchitectureError(`${archName} with hidden_act "${String(raw.hidden_act)}"`);
  if (raw.mlp_bias === true) throw new UnsupportedArchitectureError(`${archName} with mlp_bias`);

  const hiddenSize = num('hidden_size');
  const numHeads = num('num_attention_heads');
  const numKvHeads = num('num_key_value_heads', numHeads);
  const headDim = typeof raw.head_dim === 'number' ? raw.head_dim : hiddenSize / numHeads;
  let maxPositionEmbeddings = num('max_position_embeddings', 2048);
  // Mistral's window applies to every layer, as Transformers runs it. Qwen2's applies only from max_window_layers
  // on, which we do not run: capping the context at the window keeps its results exact.
  const window = typeof raw.sliding_window === 'number' && raw.sliding_window > 0 ? raw.sliding_window : undefined;
  const slidingWindow = architecture === 'mistral' && window !== undefined && window < maxPositionEmbeddings ? window : undefined;
  if (architecture === 'qwen2' && raw.use_sliding_window === true && window !== undefined) maxPositionEmbeddings = Math.min(maxPositionEmbeddings, window);

  return {
    architecture,
    hiddenSize,
    intermediateSize: num('intermediate_size'),
    numLayers: num('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: num('vocab_size'),
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    ...readHfRopeScaling(raw.rope_scaling, archName, location),
    ropeInterleaved: false,
    maxPositionEmbeddings,
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    attentionBias: architecture === 'qwen2' || raw.attention_bias === true,
    ...(slidingWindow !== undefined ? { slidingWindow } : {}),
  };
}

function readHfRopeScaling(value: unknown, arch: string, location: string): { ropeScaling?: RopeScaling } {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object') throw new CorruptModelError(location, 'rope_scaling is not an object');
  const s = value as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  if (type === 'default') return {};
  if (type !== 'llama3') throw new UnsupportedArchitectureError(`${arch} with "${String(type)}" rope scaling`);
  const get = (key: string): number => {
    const v = s[key];
    if (typeof v !== 'number') throw new MissingTensorError(`rope_scaling.${key} (in ${location})`);
    return v;
  };
  return {
    ropeScaling: {
      type: 'llama3',
      factor: get('factor'),
      lowFreqFactor: get('low_freq_factor'),
      highFreqFactor: get('high_freq_factor'),
      originalMaxPositionEmbeddings: get('original_max_position_embeddings'),
    },
  };
}

/**
 * TokenizerData kind 'hf' from tokenizer.json (+ tokenizer_config.json, generation_config.json, config.json,
 * chat_template.jinja). Special tokens named as strings are resolved to ids through tokenizer.json.
 */
export function readHfTokenizer(dir: string): TokenizerData | undefined {
  const tokenizerJson = readJson(nodePath.join(dir, 'tokenizer.json'), false);
  if (!tokenizerJson) return undefined;
  const tokenizerConfig = readJson(nodePath.join(dir, 'tokenizer_config.json'), false);
  const generationConfig = readJson(nodePath.join(dir, 'generation_config.json'), false);
  const modelConfig = readJson(nodePath.join(dir, 'config.json'), false);

  const idOf = tokenIdResolver(tokenizerJson);
  const tokenText = (v: unknown): string | undefined => {
    if (typeof v === 'string') return v;
    if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
    return undefined;
  };
  const fromConfig = (key: string): number | undefined => {
    const text = tokenText(tokenizerConfig?.[key]);
    return text === undefined ? undefined : idOf(text);
  };
  const ids = (v: unknown): number[] => (typeof v === 'number' ? [v] : Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : []);

  const eos: number[] = [];
  for (const id of [fromConfig('eos_token'), ...ids(modelConfig?.eos_token_id), ...ids(generationConfig?.eos_token_id)]) {
    if (id !== undefined && !eos.includes(id)) eos.push(id);
  }
  const bos = fromConfig('bos_token') ?? ids(modelConfig?.bos_token_id)[0] ?? ids(generationConfig?.bos_token_id)[0];
  const pad = fromConfig('pad_token') ?? ids(modelConfig?.pad_token_id)[0] ?? ids(generationConfig?.pad_token_id)[0];
  const unk = fromConfig('unk_token');
  const addBos = typeof tokenizerConfig?.add_bos_token === 'boolean' ? tokenizerConfig.add_bos_token : postProcessorAddsBos(tokenizerJson, bos, idOf);

  const special: SpecialTokens = {
    ...(bos !== undefined ? { bos } : {}),
    eos,
    ...(pad !== undefined ? { pad } : {}),
    ...(unk !== undefined ? { unk } : {}),
    addBos,
  };
  const chatTemplate = readChatTemplate(dir, tokenizerConfig);
  return {
    kind: 'hf',
    tokenizerJson,
    ...(tokenizerConfig ? { tokenizerConfig } : {}),
    special,
    ...(chatTemplate !== undefined ? { chatTemplate } : {}),
  };
}

/** A token string → id lookup over tokenizer.json's added_tokens and model vocabulary. */
function tokenIdResolver(tokenizerJson: Record<string, unknown>): (text: string) => number | undefined {
  const added = new Map<string, number>();
  if (Array.isArray(tokenizerJson.added_tokens)) {
    for (const t of tokenizerJson.added_tokens as Array<{ id?: unknown; content?: unknown }>) {
      if (typeof t?.content === 'string' && typeof t.id === 'number') added.set(t.content, t.id);
    }
  }
  const model = tokenizerJson.model as { vocab?: unknown } | undefined;
  const vocab = model?.vocab;
  return (text) => {
    const a = added.get(text);
    if (a !== undefined) return a;
    if (Array.isArray(vocab)) {
      // Unigram: [[piece, score], ...], the id is the index.
      const i = vocab.findIndex((entry) => Array.isArray(entry) && entry[0] === text);
      return i >= 0 ? i : undefined;
    }
    if (vocab && typeof vocab === 'object' && Object.prototype.hasOwnProperty.call(vocab, text)) {
      const v = (vocab as Record<string, unknown>)[text];
      return typeof v === 'number' ? v : undefined;
    }
    return undefined;
  };
}

/** Whether tokenizer.json's post-processor prepends BOS (Llama 3 style TemplateProcessing). */
function postProcessorAddsBos(tokenizerJson: Record<string, unknown>, bos: number | undefined, idOf: (text: string) => number | undefined): boolean {
  if (bos === undefined) return false;
  const check = (pp: unknown): boolean => {
    if (!pp || typeof pp !== 'object') return false;
    const p = pp as { type?: unknown; single?: unknown; processors?: unknown };
    if (p.type === 'Sequence' && Array.isArray(p.processors)) return p.processors.some(check);
    if (p.type === 'TemplateProcessing' && Array.isArray(p.single)) {
      const first = p.single[0] as { SpecialToken?: { id?: unknown } } | undefined;
      const id = first?.SpecialToken?.id;
      return typeof id === 'string' && idOf(id) === bos;
    }
    return false;
  };
  return check(tokenizerJson.post_processor);
}

function readChatTemplate(dir: string, tokenizerConfig: Record<string, unknown> | undefined): string | undefined {
  const jinja = nodePath.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinja)) return fs.readFileSync(jinja, 'utf8');
  const t = tokenizerConfig?.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    // Several named templates: the "default" one, else the first.
    const named = t as Array<{ name?: unknown; template?: unknown }>;
    const pick = named.find((x) => x?.name === 'default') ?? named[0];
    if (typeof pick?.template === 'string') return pick.template;
  }
  return undefined;
}
