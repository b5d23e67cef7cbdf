// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openGgufSource } from '../../src/model/gguf-source.js';
import { MakeModelError } from '../../src/model/errors.js';
import { makeModel, MODEL_SHAPES, type ModelShape } from '../../src/model/make-model.js';
import { CHATML_TEMPLATE } from '../../src/model/tokenizer/chat-template.js';
import { dequantize } from '../../src/model/quant.js';
import { llama3RopeFactors } from '../../src/model/rope.js';
import { tempDir } from '../support/files.js';
import { SMOLLM_TOKENIZER_JSON } from '../support/models.js';

const dir = tempDir('corolla-make-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const sha = (path: string) => createHash('sha256').update(fs.readFileSync(path)).digest('hex');

/** SmolLM2's tokenizer on a 2-layer model with Llama 3 rope scaling and a padded vocabulary. */
const SMALL_SMOLLM: ModelShape = {
  name: 'small-smollm', hiddenSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 256,
  vocabSize: 49152 + 64, contextLength: 4096, ropeTheta: 500000, rmsNormEps: 1e-5, tied: true, tokenizer: 'smollm2',
  ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
};

function std(x: Float32Array, mean = 0): number {
  let s = 0;
  for (const v of x) s += (v - mean) ** 2;
  return Math.sqrt(s / x.length);
}

describe('make-model', () => {
  it('writes stories-tiny at every dtype, loadable with the right config and tensor types', () => {
    for (const dtype of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
      const out = nodePath.join(dir, `st-${dtype}.gguf`);
      makeModel({ shape: 'stories-tiny', dtype, out, seed: 1 });
      const s = openGgufSource(out);
      try {
        const shape = MODEL_SHAPES['stories-tiny'];
        expect(s.config).toEqual({
          architecture: 'llama', hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8,
          vocabSize: 512, rmsNormEps: 1e-5, ropeTheta: 10000, ropeInterleaved: true, maxPositionEmbeddings: shape.contextLength,
          tieWordEmbeddings: true, attentionBias: false,
        });
        expect(s.gguf.alignment).toBe(32);
        expect(s.gguf.metadata.get('general.alignment')).toBe(32);
        expect(s.tokenizer?.kind).toBe('sentencepiece');
        expect(s.readTensor('token_embd').type).toBe(dtype);
        expect(s.readTensor('blk.0.attn_q').type).toBe(dtype);
        expect(s.readTensor('blk.0.attn_norm').type).toBe('f32');
        // ffn_down rows are 172 wide, not a whole number of 32-blocks: quantized dtypes fall back to f16.
        expect(s.readTensor('blk.0.ffn_down').type).toBe(dtype === 'f32' ? 'f32' : 'f16');
        // Weights are small and centred, norms near 1.
        const v = dequantize(s.readTensor('blk.2.attn_v'));
        expect(std(v)).toBeGreaterThan(0.04);
        expect(std(v)).toBeLessThan(0.08);
        const norm = dequantize(s.readTensor('blk.2.ffn_norm'));
        expect(Math.abs(norm.reduce((a, b) => a + b, 0) / norm.length - 1)).toBeLessThan(0.01);
        expect(std(norm, 1)).toBeGreaterThan(0.01);
      } finally {
        s.close();
      }
    }
  });

  it('is deterministic in the seed', () => {
    const a = nodePath.join(dir, 'a.gguf');
    const b = nodePath.join(dir, 'b.gguf');
    const c = nodePath.join(dir, 'c.gguf');
    makeModel({ shape: 'stories-tiny', dtype: 'q8_0', out: a, seed: 7 });
    makeModel({ shape: 'stories-tiny', dtype: 'q8_0', out: b, seed: 7 });
    makeModel({ shape: 'stories-tiny', dtype: 'q8_0', out: c, seed: 8 });
    expect(sha(a)).toBe(sha(b));
    expect(sha(a)).not.toBe(sha(c));
  });

  it('embeds the SmolLM2 tokenizer as GGUF BPE, pads the vocabulary, and writes rope_freqs', () => {
    const out = nodePath.join(dir, 'small.gguf');
    makeModel({ shape: SMALL_SMOLLM, dtype: 'q4_0', out, smollmTokenizerPath: SMOLLM_TOKENIZER_JSON });
    const s = openGgufSource(out);
    try {
      const t = s.tokenizer;
      expect(t?.kind).toBe('bpe');
      if (t?.kind !== 'bpe') return;
      expect(t.tokens).toHaveLength(49152 + 64);
      expect(t.tokens.slice(0, 3)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
      expect(t.tokens[49152]).toBe('<|reserved_0|>');
      expect(t.tokenTypes?.slice(0, 3)).toEqual([3, 3, 3]);
      expect(t.tokenTypes?.[100]).toBe(1);
      expect(t.tokenTypes?.[49152 + 63]).toBe(5);
      expect(t.merges).toHaveLength(48900);
      expect(t.merges[0]).toBe('Ġ t');
      expect(t.preTokenizer).toBe('smollm');
      expect(t.special).toEqual({ bos: 1, eos: [2], pad: 2, unk: 0, addBos: false });
      expect(t.chatTemplate).toBe(CHATML_TEMPLATE);
      expect(s.config.vocabSize).toBe(49152 + 64);
      // llama3 scaling is carried the llama.cpp way: a rope_freqs tensor, no rope.scaling metadata.
      expect(s.config.ropeScaling).toBeUndefined();
      const freqs = s.readTensor('rope_freqs');
      expect(freqs.shape).toEqual([16]);
      expect(Array.from(dequantize(freqs))).toEqual(Array.from(llama3RopeFactors(32, 500000, SMALL_SMOLLM.ropeScaling!)));
      expect(s.readTensor('token_embd').type).toBe('q4_0');
    } finally {
      s.close();
    }
  });

  it('refuses unknown shapes and dtypes', () => {
    expect(() => makeModel({ shape: 'gpt-5' as never, dtype: 'f32', out: nodePath.join(dir, 'x.gguf') })).toThrow(MakeModelError);
    expect(() => makeModel({ shape: 'stories-tiny', dtype: 'q2_k' as never, out: nodePath.join(dir, 'x.gguf') })).toThrow(MakeModelError);
  });

  it('llama.cpp (node-llama-cpp) loads the files and generates varied tokens', async () => {
    const { getLlama } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
    try {
      const files: Array<[string, number]> = [
        [nodePath.join(dir, 'st-q8_0.gguf'), 512],
        [nodePath.join(dir, 'st-f32.gguf'), 512],
        [nodePath.join(dir, 'small.gguf'), SMALL_SMOLLM.vocabSize],
      ];
      for (const [file, vocab] of files) {
        const model = await llama.loadModel({ modelPath: file });
        const context = await model.createContext({ threads: 1, contextSize: 128 });
        const sequence = context.getSequence();
        const prompt = model.tokenize('Once upon a time');
        expect(prompt.length).toBeGreaterThan(0);
        const out: number[] = [];
        for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
          out.push(token);
          if (out.length >= 12) break;
        }
        expect(out.every((t) => t >= 0 && t < vocab)).toBe(true);
        expect(new Set(out).size, `${file}: ${out.join(',')}`).toBeGreaterThan(3);
        await context.dispose();
        await model.dispose();
      }
    } finally {
      await llama.dispose();
    }
  });
});
