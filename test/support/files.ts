/** Files tests write: temp dirs, tiny GGUF and Hugging Face models written on the fly. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { GgmlType, ggmlTypeInfo } from '../../src/model/ggml-types.js';
import { gv, writeGguf, type GgufMetaValue, type GgufTensorSpec } from '../../src/model/gguf-writer.js';
import { GgufValueType } from '../../src/model/gguf.js';
import { f32ArrayToBf16, f32ArrayToF16 } from '../../src/model/quant.js';
import { writeSafetensors, type SafetensorsWriteTensor } from '../../src/model/safetensors.js';
import { SMOLLM_TOKENIZER_JSON } from './models.js';
import { randomFloats } from './random.js';

/** A fresh directory under the system temp dir; the caller removes it. */
export function tempDir(prefix = 'corolla-test-'): string {
  return fs.mkdtempSync(nodePath.join(os.tmpdir(), prefix));
}

export interface TinyShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  inter: number;
  vocab: number;
}

export const TINY: TinyShape = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, inter: 64, vocab: 64 };

export interface TinyGgufOptions {
  arch?: string;
  shape?: TinyShape;
  /** Extra or replacing metadata. */
  metadata?: Array<[string, GgufMetaValue]>;
  /** ggml type for 2-D weights (F32 unless given); data is filled with zeros of the right size. */
  weightType?: number;
  /** Add q/k/v biases. */
  biases?: boolean;
  /** Include an untied output.weight. */
  untied?: boolean;
  alignment?: number;
  /** A tokenizer: 'llama' (SentencePiece-like) or 'gpt2'. */
  tokenizer?: 'llama' | 'gpt2';
}

/**
 * Writes a small, valid llama-style GGUF (f32, every tensor a multiple of 32 bytes so the file has no trailing
 * padding). Returns the tensors' f32 values by stored name.
 */
export function writeTinyGguf(path: string, options: TinyGgufOptions = {}): Map<string, Float32Array> {
  const arch = options.arch ?? 'llama';
  const s = options.shape ?? TINY;
  const headDim = s.hidden / s.heads;
  const values = new Map<string, Float32Array>();
  const tensors: GgufTensorSpec[] = [];
  let seed = 1;
  const add = (name: string, dims: number[], type: number = GgmlType.F32) => {
    const n = dims.reduce((a, b) => a * b, 1);
    if (type === GgmlType.F32) {
      const v = randomFloats(n, seed++, 0.1);
      values.set(name, v);
      tensors.push({ name, ggmlType: type, dims, data: new Uint8Array(v.buffer) });
    } else {
      const info = ggmlTypeInfo(type)!;
      const bytes = (n / info.blockSize) * info.typeSize; // zeros: a valid block of any type
      tensors.push({ name, ggmlType: type, dims, data: new Uint8Array(bytes) });
    }
  };
  const w = options.weightType ?? GgmlType.F32;
  add('token_embd.weight', [s.hidden, s.vocab], w);
  add('output_norm.weight', [s.hidden]);
  if (options.untied) add('output.weight', [s.hidden, s.vocab], w);
  for (let i = 0; i < s.layers; i++) {
    const b = `blk.${i}.`;
    add(b + 'attn_norm.weight', [s.hidden]);
    add(b + 'attn_q.weight', [s.hidden, s.heads * headDim], w);
    add(b + 'attn_k.weight', [s.hidden, s.kvHeads * headDim], w);
    add(b + 'attn_v.weight', [s.hidden, s.kvHeads * headDim], w);
    if (options.biases) {
      add(b + 'attn_q.bias', [s.heads * headDim]);
      add(b + 'attn_k.bias', [s.kvHeads * headDim]);
      add(b + 'attn_v.bias', [s.kvHeads * headDim]);
    }
    add(b + 'attn_output.weight', [s.heads * headDim, s.hidden], w);
    add(b + 'ffn_norm.weight', [s.hidden]);
    add(b + 'ffn_gate.weight', [s.hidden, s.inter], w);
    add(b + 'ffn_up.weight', [s.hidden, s.inter], w);
    add(b + 'ffn_down.weight', [s.inter, s.hidden], w);
  }
  const metadata = new Map<string, GgufMetaValue>([
    ['general.architecture', gv.str(arch)],
    [`${arch}.context_length`, gv.u32(256)],
    [`${arch}.embedding_length`, gv.u32(s.hidden)],
    [`${arch}.block_count`, gv.u32(s.layers)],
    [`${arch}.feed_forward_length`, gv.u32(s.inter)],
    [`${arch}.attention.head_count`, gv.u32(s.heads)],
    [`${arch}.attention.head_count_kv`, gv.u32(s.kvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(1e-6)],
    [`${arch}.rope.freq_base`, gv.f32(1e6)],
    [`${arch}.rope.dimension_count`, gv.u32(headDim)],
  ]);
  if (options.tokenizer) {
    const tokens = Array.from({ length: s.vocab }, (_, i) => (i === 0 ? '<unk>' : i === 1 ? '<s>' : i === 2 ? '</s>' : `t${i}`));
    metadata.set('tokenizer.ggml.model', gv.str(options.tokenizer));
    metadata.set('tokenizer.ggml.tokens', gv.arr(GgufValueType.STRING, tokens));
    metadata.set('tokenizer.ggml.token_type', gv.arr(GgufValueType.INT32, Int32Array.from(tokens, (_, i) => (i < 3 ? 3 : 1))));
    if (options.tokenizer === 'llama') metadata.set('tokenizer.ggml.scores', gv.arr(GgufValueType.FLOAT32, Float32Array.from(tokens, (_, i) => -i)));
    else metadata.set('tokenizer.ggml.merges', gv.arr(GgufValueType.STRING, ['t 1', 't 2']));
    metadata.set('tokenizer.ggml.bos_token_id', gv.u32(1));
    metadata.set('tokenizer.ggml.eos_token_id', gv.u32(2));
    metadata.set('tokenizer.ggml.padding_token_id', gv.u32(0xffffffff));
  }
  for (const [k, v] of options.metadata ?? []) metadata.set(k, v);
  writeGguf(path, { metadata: [...metadata], tensors, ...(options.alignment ? { alignment: options.alignment } : {}) });
  return values;
}

export interface TinyHfOptions {
  architecture?: 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM' | string;
  dtype?: 'F32' | 'F16' | 'BF16' | 'I64';
  tied?: boolean;
  /** Write lm_head even though tied (some checkpoints do). */
  lmHeadAnyway?: boolean;
  shards?: number;
  config?: Record<string, unknown>;
  /** Copy SmolLM2's tokenizer.json and write a tokenizer_config.json / generation_config.json. */
  tokenizer?: boolean;
}

/**
 * Writes a tiny Hugging Face model directory. Returns each HF tensor's f32 values (before dtype conversion).
 */
export function writeTinyHf(dir: string, options: TinyHfOptions = {}, shape: TinyShape = TINY): Map<string, Float32Array> {
  fs.mkdirSync(dir, { recursive: true });
  const arch = options.architecture ?? 'LlamaForCausalLM';
  const qwen = arch === 'Qwen2ForCausalLM';
  const headDim = shape.hidden / shape.heads;
  const tied = options.tied ?? false;
  const config = {
    architectures: [arch],
    model_type: qwen ? 'qwen2' : arch === 'MistralForCausalLM' ? 'mistral' : 'llama',
    hidden_size: shape.hidden,
    intermediate_size: shape.inter,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    max_position_embeddings: 1024,
    vocab_size: shape.vocab,
    tie_word_embeddings: tied,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    ...options.config,
  };
  fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(config, null, 2));

  const values = new Map<string, Float32Array>();
  const list: Array<{ name: string; shape: number[] }> = [];
  const add = (name: string, s: number[]) => list.push({ name, shape: s });
  add('model.embed_tokens.weight', [shape.vocab, shape.hidden]);
  add('model.norm.weight', [shape.hidden]);
  if (!tied || options.lmHeadAnyway) add('lm_head.weight', [shape.vocab, shape.hidden]);
  for (let i = 0; i < shape.layers; i++) {
    const p = `model.layers.${i}.`;
    add(p + 'input_layernorm.weight', [shape.hidden]);
    add(p + 'self_attn.q_proj.weight', [shape.heads * headDim, shape.hidden]);
    add(p + 'self_attn.k_proj.weight', [shape.kvHeads * headDim, shape.hidden]);
    add(p + 'self_attn.v_proj.weight', [shape.kvHeads * headDim, shape.hidden]);
    if (qwen) {
      add(p + 'self_attn.q_proj.bias', [shape.heads * headDim]);
      add(p + 'self_attn.k_proj.bias', [shape.kvHeads * headDim]);
      add(p + 'self_attn.v_proj.bias', [shape.kvHeads * headDim]);
    }
    add(p + 'self_attn.o_proj.weight', [shape.hidden, shape.heads * headDim]);
    add(p + 'post_attention_layernorm.weight', [shape.hidden]);
    add(p + 'mlp.gate_proj.weight', [shape.inter, shape.hidden]);
    add(p + 'mlp.up_proj.weight', [shape.inter, shape.hidden]);
    add(p + 'mlp.down_proj.weight', [shape.hidden, shape.inter]);
    add(p + 'self_attn.rotary_emb.inv_freq', [headDim / 2]); // old checkpoints carry this; it must be ignored
  }
  const dtype = options.dtype ?? 'F32';
  const tensors: SafetensorsWriteTensor[] = list.map(({ name, shape: s }, i) => {
    const v = randomFloats(s.reduce((a, b) => a * b, 1), i + 7, 0.1);
    values.set(name, v);
    const data =
      dtype === 'F16' ? f32ArrayToF16(v) : dtype === 'BF16' ? f32ArrayToBf16(v) : dtype === 'I64' ? new Uint8Array(v.length * 8) : new Uint8Array(v.buffer);
    return { name, dtype: name.endsWith('inv_freq') ? 'F32' : dtype, shape: s, data: name.endsWith('inv_freq') ? new Uint8Array(v.buffer) : data };
  });

  const shards = options.shards ?? 1;
  if (shards === 1) writeSafetensors(nodePath.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  else {
    const weightMap: Record<string, string> = {};
    for (let k = 0; k < shards; k++) {
      const file = `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.filter((_, i) => i % shards === k);
      for (const t of part) weightMap[t.name] = file;
      writeSafetensors(nodePath.join(dir, file), part, { format: 'pt' });
    }
    fs.writeFileSync(nodePath.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  }

  if (options.tokenizer) {
    fs.copyFileSync(SMOLLM_TOKENIZER_JSON, nodePath.join(dir, 'tokenizer.json'));
    fs.writeFileSync(
      nodePath.join(dir, 'tokenizer_config.json'),
      JSON.stringify({
        bos_token: '<|im_start|>',
        eos_token: { content: '<|im_end|>', special: true },
        pad_token: '<|im_end|>',
        unk_token: '<|endoftext|>',
        chat_template: "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}",
      }),
    );
    fs.writeFileSync(nodePath.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 0] }));
  }
  return values;
}
