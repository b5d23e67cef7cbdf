/**
 * Checks shared by every loader: a ModelConfig must be internally consistent, and the tensors a file offers must
 * be the ones (and the shapes) that config implies. Doing this at open turns "a matmul got the wrong size deep in
 * the engine" into one clear error naming the file and the tensor.
 */
import { CorruptModelError, MissingTensorError } from './errors.js';
import type { CanonicalTensorName, ModelConfig } from './types.js';

/** Architecture names (as files spell them) that run on the Llama graph. */
export const SUPPORTED_ARCHITECTURES = ['llama', 'mistral', 'qwen2', 'smollm'] as const;

export function checkConfig(location: string, c: ModelConfig): void {
  const positive: Array<[string, number]> = [
    ['hiddenSize', c.hiddenSize],
    ['intermediateSize', c.intermediateSize],
    ['numLayers', c.numLayers],
    ['numHeads', c.numHeads],
    ['numKvHeads', c.numKvHeads],
    ['headDim', c.headDim],
    ['vocabSize', c.vocabSize],
    ['maxPositionEmbeddings', c.maxPositionEmbeddings],
  ];
  for (const [name, value] of positive) {
    // 2^24 bounds every real dimension by a wide margin and keeps products well inside safe integers.
    if (!Number.isInteger(value) || value <= 0 || value > 1 << 24) throw new CorruptModelError(location, `${name} is ${value}`);
  }
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new CorruptModelError(location, `${c.numHeads} attention heads are not a multiple of ${c.numKvHeads} KV heads`);
  }
  if (c.headDim % 2 !== 0) throw new CorruptModelError(location, `head dimension ${c.headDim} is odd, RoPE needs pairs`);
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1)) throw new CorruptModelError(location, `rms_norm_eps is ${c.rmsNormEps}`);
  if (!(c.ropeTheta > 0 && Number.isFinite(c.ropeTheta))) throw new CorruptModelError(location, `rope theta is ${c.ropeTheta}`);
  if (c.slidingWindow !== undefined && !(Number.isInteger(c.slidingWindow) && c.slidingWindow > 0)) {
    throw new CorruptModelError(location, `sliding window is ${c.slidingWindow}`);
  }
  const s = c.ropeScaling;
  if (s) {
    const ok = s.factor > 0 && s.lowFreqFactor > 0 && s.highFreqFactor > s.lowFreqFactor && s.originalMaxPositionEmbeddings > 0;
    if (!ok) throw new CorruptModelError(location, `invalid llama3 rope scaling ${JSON.stringify(s)}`);
  }
}

/** The tensors (canonical names, our [out, in] shapes) a model with this config must have. */
export function expectedTensorShapes(c: ModelConfig): Map<CanonicalTensorName, number[]> {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const shapes = new Map<CanonicalTensorName, number[]>();
  shapes.set('token_embd', [c.vocabSize, c.hiddenSize]);
  shapes.set('output_norm', [c.hiddenSize]);
  if (!c.tieWordEmbeddings) shapes.set('output', [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    const b = `blk.${i}.`;
    shapes.set(b + 'attn_norm', [c.hiddenSize]);
    shapes.set(b + 'attn_q', [q, c.hiddenSize]);
    shapes.set(b + 'attn_k', [kv, c.hiddenSize]);
    shapes.set(b + 'attn_v', [kv, c.hiddenSize]);
    shapes.set(b + 'attn_output', [c.hiddenSize, q]);
    if (c.attentionBias) {
      shapes.set(b + 'attn_q.bias', [q]);
      shapes.set(b + 'attn_k.bias', [kv]);
      shapes.set(b + 'attn_v.bias', [kv]);
    }
    shapes.set(b + 'ffn_norm', [c.hiddenSize]);
    shapes.set(b + 'ffn_gate', [c.intermediateSize, c.hiddenSize]);
    shapes.set(b + 'ffn_up', [c.intermediateSize, c.hiddenSize]);
    shapes.set(b + 'ffn_down', [c.hiddenSize, c.intermediateSize]);
  }
  return shapes;
}

/** Throws MissingTensorError / CorruptModelError unless every expected tensor is present with its shape. */
export function verifyTensorShapes(location: string, c: ModelConfig, actual: ReadonlyMap<CanonicalTensorName, readonly number[]>): void {
  for (const [name, shape] of expectedTensorShapes(c)) {
    const got = actual.get(name);
    if (!got) throw new MissingTensorError(`tensor "${name}" (in ${location})`);
    if (!sameShape(got, shape)) {
      throw new CorruptModelError(location, `tensor "${name}" has shape [${got.join(', ')}], the config implies [${shape.join(', ')}]`);
    }
  }
  const ropeFreqs = actual.get('rope_freqs');
  if (ropeFreqs && !sameShape(ropeFreqs, [c.headDim / 2])) {
    throw new CorruptModelError(location, `tensor "rope_freqs" has shape [${ropeFreqs.join(', ')}], expected [${c.headDim / 2}]`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
