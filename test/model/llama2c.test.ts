// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptModelError, ModelNotFoundError } from '../../src/model/errors.js';
import { openGgufSource } from '../../src/model/gguf-source.js';
import { openLlama2cSource, readLlama2cTokenizer } from '../../src/model/llama2c-source.js';
import { tempDir } from '../support/files.js';
import { SHARED_MODELS, STORIES_BIN, STORIES_GGUF, STORIES_TOKENIZER } from '../support/models.js';

const dir = tempDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('llama2.c checkpoints', () => {
  it('has the README config', () => {
    const s = openLlama2cSource(STORIES_BIN);
    try {
      expect(s.format).toBe('llama2c');
      expect(s.config).toEqual({
        architecture: 'llama',
        hiddenSize: 64,
        intermediateSize: 172,
        numLayers: 5,
        numHeads: 8,
        numKvHeads: 4,
        headDim: 8,
        vocabSize: 512,
        rmsNormEps: 1e-5,
        ropeTheta: 10000,
        ropeInterleaved: true,
        maxPositionEmbeddings: 512,
        tieWordEmbeddings: true,
        attentionBias: false,
      });
      expect(s.tensorNames()).not.toContain('output');
      expect(s.tensorNames()).toHaveLength(2 + 5 * 9);
    } finally {
      s.close();
    }
  });

  it('gives tensors bit-identical to the GGUF, every one', () => {
    const bin = openLlama2cSource(STORIES_BIN);
    const gguf = openGgufSource(STORIES_GGUF);
    try {
      const names = bin.tensorNames();
      expect(new Set(names)).toEqual(new Set(gguf.tensorNames().filter((n) => n !== 'output')));
      for (const name of names) {
        const a = bin.readTensor(name);
        const b = gguf.readTensor(name);
        expect(a.shape, name).toEqual(b.shape);
        expect(a.type).toBe('f32');
        expect(Buffer.from(a.data).equals(Buffer.from(b.data)), name).toBe(true);
      }
      // The GGUF's untied classifier is the embedding the .bin shares.
      expect(Buffer.from(gguf.readTensor('output').data).equals(Buffer.from(bin.readTensor('token_embd').data))).toBe(true);
    } finally {
      bin.close();
      gguf.close();
    }
  });

  it('finds tok512.bin beside the checkpoint and reads it', () => {
    const s = openLlama2cSource(STORIES_BIN);
    try {
      expect(s.tokenizerPath).toBe(STORIES_TOKENIZER);
      const t = s.tokenizer;
      expect(t?.kind).toBe('llama2c');
      if (t?.kind !== 'llama2c') return;
      expect(t.tokens).toHaveLength(512);
      expect(t.tokens[0]).toBe('<unk>');
      expect(t.tokens[3]).toBe('<0x00>');
      expect(t.tokens[258]).toBe('<0xFF>');
      expect(t.maxTokenLength).toBe(7);
      expect(t.special).toEqual({ unk: 0, bos: 1, eos: [2], addBos: true }); // the one llama2.c reader's specials
      // The same pieces as the GGUF vocabulary, apart from llama2.c's spelling of BOS/EOS and spaces.
      const gguf = openGgufSource(STORIES_GGUF);
      const ggufTokens = gguf.tokenizer?.kind === 'sentencepiece' ? gguf.tokenizer.tokens : [];
      gguf.close();
      const same = t.tokens.filter((p, i) => p.replaceAll(' ', '▁') === ggufTokens[i]).length;
      expect(same).toBe(510);
    } finally {
      s.close();
    }
  });

  it('takes an explicit tokenizer path, and checks its vocabulary size', () => {
    const copy = nodePath.join(dir, 'model.bin');
    fs.copyFileSync(STORIES_BIN, copy);
    const none = openLlama2cSource(copy);
    expect(none.tokenizer).toBeUndefined();
    none.close();
    const explicit = openLlama2cSource(copy, { tokenizerPath: STORIES_TOKENIZER });
    expect(explicit.tokenizer?.kind).toBe('llama2c');
    explicit.close();
    expect(() => openLlama2cSource(copy, { tokenizerPath: nodePath.join(dir, 'missing.bin') })).toThrow(ModelNotFoundError);
    // The Llama 2 tokenizer (32000 tokens) is not this model's.
    expect(() => readLlama2cTokenizer(nodePath.join(SHARED_MODELS, 'llama2-tokenizer', 'tokenizer.bin'), 512)).toThrow(CorruptModelError);
    const big = readLlama2cTokenizer(nodePath.join(SHARED_MODELS, 'llama2-tokenizer', 'tokenizer.bin'), 32000);
    expect(big.kind === 'llama2c' && big.tokens.length).toBe(32000);
  });

  it('reads an untied classifier (negative vocab_size)', () => {
    const bin = fs.readFileSync(STORIES_BIN);
    const untied = Buffer.concat([bin, Buffer.alloc(512 * 64 * 4, 1)]);
    untied.writeInt32LE(-512, 20);
    const path = nodePath.join(dir, 'untied.bin');
    fs.writeFileSync(path, untied);
    const s = openLlama2cSource(path, { tokenizerPath: STORIES_TOKENIZER });
    try {
      expect(s.config.tieWordEmbeddings).toBe(false);
      expect(s.config.vocabSize).toBe(512);
      const out = s.readTensor('output');
      expect(out.shape).toEqual([512, 64]);
      expect(out.data.every((b) => b === 1)).toBe(true);
    } finally {
      s.close();
    }
  });
});
