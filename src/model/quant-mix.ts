/**
 * Which type each weight of a quantized model gets, as llama.cpp's `llama-quantize` assigns them
 * (llama_tensor_get_type in src/llama-quant.cpp), for the types `corolla dev make-model` writes:
 * - A single type (q8_0 … q6_k) applies to every 2-D weight.
 * - The "_M" mixes (Q4_K_M, Q5_K_M) use their K type, except: the output projection (token_embd when tied) gets
 *   Q6_K; attn_v and ffn_down get Q6_K in the layers use_more_bits picks (the first and last eighth of the layers
 *   and every third one between).
 * - Rows that are not a whole number of 256-element super-blocks cannot hold a K type, and llama.cpp falls back:
 *   Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0 (so on SmolLM2-135M, whose rows are 576 wide, only ffn_down, with rows
 *   of 1536, keeps K types). Rows that are not a whole number of 32-element blocks fall back to F16.
 */
import { ggmlTypeInfo, ggmlTypeOf } from './ggml-types.js';
import { openGguf } from './gguf.js';
import { writeGguf, type GgufMetaValue } from './gguf-writer.js';
import { dequantize, encodeTensor, QK, QK_K } from './quant.js';
import type { TensorType } from './types.js';

export type QuantMix = 'q4_k_m' | 'q5_k_m';
export type QuantScheme = Exclude<TensorType, 'f32' | 'f16' | 'bf16'> | QuantMix;

/** llama.cpp's use_more_bits: the layers where Q4_K_M/Q5_K_M keep attn_v and ffn_down at Q6_K. */
export function useMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.floor(layers / 8); // C integer division, as llama.cpp computes it
  return layer < eighth || layer >= Math.floor((7 * layers) / 8) || (layer - eighth) % 3 === 2;
}

const K_FALLBACK: Partial<Record<TensorType, TensorType>> = { q4_k: 'q5_0', q5_k: 'q5_1', q6_k: 'q8_0' };

export interface MixTarget {
  /** GGUF tensor name, e.g. "blk.3.attn_v.weight". */
  readonly name: string;
  /** Row length (the tensor's first GGUF dimension). */
  readonly cols: number;
  readonly layers: number;
  /** Whether the model has a separate `output` tensor (else token_embd doubles as the output projection). */
  readonly hasOutput: boolean;
}

/** The type llama-quantize would give this 2-D weight under `scheme`. */
export function mixTensorType(scheme: QuantScheme, target: MixTarget): TensorType {
  let type: TensorType = scheme === 'q4_k_m' ? 'q4_k' : scheme === 'q5_k_m' ? 'q5_k' : scheme;
  if (scheme === 'q4_k_m' || scheme === 'q5_k_m') {
    const layer = /^blk\.(\d+)\./.exec(target.name);
    const isOutput = target.name === 'output.weight' || (!target.hasOutput && target.name === 'token_embd.weight');
    if (isOutput) type = 'q6_k';
    else if (layer && /\.(attn_v|ffn_down)\.weight$/.test(target.name) && useMoreBits(Number(layer[1]), target.layers)) type = 'q6_k';
  }
  if (target.cols % QK_K !== 0) type = K_FALLBACK[type] ?? type;
  if (target.cols % QK !== 0) type = 'f16';
  return type;
}

/**
 * Re-quantizes a GGUF as llama-quantize would under `scheme` (for tests on a real model: stories260K): every 2-D
 * `.weight` but the norms gets mixTensorType's type, from its values dequantized to f32; everything else and all
 * metadata are copied (general.file_type is left as it was). The writer is ours, so llama.cpp loading the result
 * checks our quantizers' byte layouts too.
 */
export function requantizeGguf(from: string, scheme: QuantScheme, out: string): void {
  const source = openGguf(from);
  try {
    const metadata: Array<[string, GgufMetaValue]> = [];
    for (const [key, value] of source.metadata) {
      const t = source.metadataTypes.get(key)!;
      metadata.push([key, { type: t.type, value, ...(t.elementType !== undefined ? { elementType: t.elementType } : {}) }]);
    }
    const hasOutput = source.tensors.some((t) => t.name === 'output.weight');
    const layers = new Set(source.tensors.map((t) => /^blk\.(\d+)\./.exec(t.name)?.[1]).filter(Boolean)).size;
    const tensors = source.tensors.map((t) => {
      const bytes = source.readTensorBytes(t.name);
      const info = ggmlTypeInfo(t.ggmlType);
      if (t.dims.length !== 2 || !t.name.endsWith('.weight') || !info?.tensorType) return { name: t.name, ggmlType: t.ggmlType, dims: t.dims, data: bytes };
      const type = mixTensorType(scheme, { name: t.name, cols: t.dims[0]!, layers, hasOutput });
      const values = dequantize({ name: t.name, type: info.tensorType, shape: [t.dims[1]!, t.dims[0]!], data: bytes });
      return { name: t.name, ggmlType: ggmlTypeOf(type), dims: t.dims, data: encodeTensor(type, values) };
    });
    writeGguf(out, { metadata, tensors, alignment: source.alignment });
  } finally {
    source.close();
  }
}
