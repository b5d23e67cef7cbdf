/**
 * Hugging Face twins of make-model GGUFs: the same random weights written as a (sharded) safetensors checkpoint in
 * F32, F16 or BF16 with its config.json, and a GGUF holding exactly the values that checkpoint holds (2-D weights
 * in the same dtype, norms and biases as F32 of the rounded values), so the two must give the same logits.
 *
 * GGUF "llama" q/k rows are in Meta's interleaved RoPE order; Hugging Face's converter permutes them so RoPE rotates
 * the two halves of each head. The twin undoes that permutation, exactly as a real checkpoint is laid out.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { GgmlType } from '../../src/model/ggml-types.js';
import { writeGguf, type GgufMetaValue, type GgufTensorSpec } from '../../src/model/gguf-writer.js';
import { openGguf } from '../../src/model/gguf.js';
import { openGgufSource } from '../../src/model/gguf-source.js';
import { HF_LAYER_NAMES } from '../../src/model/hf-source.js';
import { MODEL_SHAPES, type ModelShape, type ModelShapeName } from '../../src/model/make-model.js';
import { bf16ToF32, dequantize, f16ToF32, f32ArrayToBf16, f32ArrayToF16 } from '../../src/model/quant.js';
import { writeSafetensors, type SafetensorsWriteTensor } from '../../src/model/safetensors.js';

export type HfDtype = 'F32' | 'F16' | 'BF16';

const GGML_TYPE: Record<HfDtype, number> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };
/** llama.cpp's LLAMA_FTYPE of an all-F32 / F16 / BF16 file. */
const FILE_TYPE: Record<HfDtype, number> = { F32: 0, F16: 1, BF16: 32 };

function encode(dtype: HfDtype, values: Float32Array): Uint8Array {
  if (dtype === 'F16') return f32ArrayToF16(values);
  if (dtype === 'BF16') return f32ArrayToBf16(values);
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

/** The values a dtype actually stores. */
function rounded(dtype: HfDtype, values: Float32Array): Float32Array {
  if (dtype === 'F32') return values;
  const bits = new Uint16Array(encode(dtype, values).buffer);
  return Float32Array.from(bits, dtype === 'F16' ? f16ToF32 : bf16ToF32);
}

/** Meta (interleaved) row 2i+p of each head becomes Hugging Face row p·(headDim/2)+i. */
export function toHalfLayout(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < headDim / 2; i++)
      for (let p = 0; p < 2; p++) out.set(w.subarray((h * headDim + 2 * i + p) * cols, (h * headDim + 2 * i + p + 1) * cols), (h * headDim + p * (headDim / 2) + i) * cols);
  return out;
}

function hfName(canonical: string): string {
  if (canonical === 'token_embd') return 'model.embed_tokens.weight';
  if (canonical === 'output_norm') return 'model.norm.weight';
  if (canonical === 'output') return 'lm_head.weight';
  const m = /^blk\.(\d+)\.(.+)$/.exec(canonical)!;
  const suffix = Object.entries(HF_LAYER_NAMES).find(([, ours]) => ours === m[2])![0];
  return `model.layers.${m[1]}.${suffix}`;
}

function hfArchitecture(shape: ModelShape): string {
  if (shape.architecture === 'qwen2') return 'Qwen2ForCausalLM';
  return shape.slidingWindow ? 'MistralForCausalLM' : 'LlamaForCausalLM';
}

export interface HfTwin {
  /** The checkpoint directory. */
  readonly hf: string;
  /** The GGUF holding the same values. */
  readonly gguf: string;
}

/**
 * Writes `{dir}/hf` (config.json, safetensors in `shards` files with an index when more than one) and
 * `{dir}/twin.gguf` from a make-model GGUF of shape `shapeName`.
 */
export function writeHfTwin(ggufPath: string, shapeName: ModelShapeName, dir: string, dtype: HfDtype, shards: number): HfTwin {
  const shape: ModelShape = MODEL_SHAPES[shapeName];
  const source = openGgufSource(ggufPath);
  const c = source.config;
  const hfDir = nodePath.join(dir, 'hf');
  fs.mkdirSync(hfDir, { recursive: true });
  const hfTensors: SafetensorsWriteTensor[] = [];
  const ggufTensors: GgufTensorSpec[] = [];
  try {
    for (const name of source.tensorNames()) {
      const t = source.readTensor(name);
      if (name === 'rope_freqs') {
        // Hugging Face carries llama3 scaling in config.json; the GGUF twin keeps the tensor llama.cpp writes.
        ggufTensors.push({ name: 'rope_freqs.weight', ggmlType: GgmlType.F32, dims: [...t.shape].reverse(), data: t.data });
        continue;
      }
      const values = rounded(dtype, dequantize(t));
      const matrix = t.shape.length === 2;
      const ggufName = name.endsWith('.bias') ? name : `${name}.weight`;
      ggufTensors.push({
        name: ggufName,
        ggmlType: matrix ? GGML_TYPE[dtype] : GgmlType.F32,
        dims: [...t.shape].reverse(),
        data: matrix ? encode(dtype, values) : encode('F32', values),
      });
      let hfValues = values;
      const qk = /\.attn_([qk])(\.bias)?$/.exec(name);
      if (qk && c.ropeInterleaved) {
        const heads = qk[1] === 'q' ? c.numHeads : c.numKvHeads;
        hfValues = toHalfLayout(values, heads, c.headDim, matrix ? t.shape[1]! : 1);
      }
      hfTensors.push({ name: hfName(name), dtype, shape: [...t.shape], data: encode(dtype, hfValues) });
    }
  } finally {
    source.close();
  }

  // Shards in tensor order, about equal in count; an index names each tensor's file.
  if (shards === 1) writeSafetensors(nodePath.join(hfDir, 'model.safetensors'), hfTensors, { format: 'pt' });
  else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(hfTensors.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = hfTensors.slice(s * per, (s + 1) * per);
      writeSafetensors(nodePath.join(hfDir, file), part, { format: 'pt' });
      for (const t of part) weightMap[t.name] = file;
    }
    const totalSize = hfTensors.reduce((n, t) => n + t.data.byteLength, 0);
    fs.writeFileSync(nodePath.join(hfDir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2));
  }
  const s = shape.ropeScaling;
  fs.writeFileSync(
    nodePath.join(hfDir, 'config.json'),
    JSON.stringify({
      architectures: [hfArchitecture(shape)],
      hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize, num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads, vocab_size: c.vocabSize,
      rms_norm_eps: shape.rmsNormEps, rope_theta: shape.ropeTheta, max_position_embeddings: c.maxPositionEmbeddings,
      tie_word_embeddings: c.tieWordEmbeddings, hidden_act: 'silu', torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
      rope_scaling: s ? { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalMaxPositionEmbeddings } : null,
      sliding_window: shape.slidingWindow ?? null,
      bos_token_id: 1, eos_token_id: 2,
    }),
  );

  // The GGUF twin: the original metadata (its value types included), the retyped tensors.
  const original = openGguf(ggufPath);
  const metadata: Array<[string, GgufMetaValue]> = [];
  try {
    for (const [key, value] of original.metadata) {
      const t = original.metadataTypes.get(key)!;
      const v = key === 'general.file_type' ? FILE_TYPE[dtype] : value;
      metadata.push([key, { type: t.type, value: v, ...(t.elementType !== undefined ? { elementType: t.elementType } : {}) }]);
    }
  } finally {
    original.close();
  }
  const twin = nodePath.join(dir, 'twin.gguf');
  writeGguf(twin, { metadata, tensors: ggufTensors, alignment: 32 });
  return { hf: hfDir, gguf: twin };
}
