import * as nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { GgmlType } from '../../src/model/ggml-types.js';
import { openGguf, GgufValueType } from '../../src/model/gguf.js';
import { openGgufSource } from '../../src/model/gguf-source.js';
import { gv, writeGguf } from '../../src/model/gguf-writer.js';
import { UnsupportedArchitectureError, UnsupportedQuantizationError } from '../../src/model/errors.js';
import { tempDir, TINY, writeTinyGguf } from '../support/files.js';
import { STORIES_GGUF } from '../support/models.js';

const dir = tempDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('GGUF: stories260K', () => {
  it('parses the header, metadata and tensor infos', () => {
    const g = openGguf(STORIES_GGUF);
    try {
      expect(g.version).toBe(3);
      expect(g.alignment).toBe(32);
      expect(g.metadata.get('general.architecture')).toBe('llama');
      expect(g.metadata.get('llama.embedding_length')).toBe(64);
      expect(g.metadataTypes.get('tokenizer.ggml.tokens')).toEqual({ type: GgufValueType.ARRAY, elementType: GgufValueType.STRING });
      expect(g.metadata.get('tokenizer.ggml.scores')).toBeInstanceOf(Float32Array);
      expect(g.metadata.get('tokenizer.ggml.token_type')).toBeInstanceOf(Int32Array);
      expect(g.tensors).toHaveLength(48);
      const q = g.tensor('blk.0.attn_q.weight')!;
      expect(q.typeName).toBe('F32');
      expect(q.dims).toEqual([64, 64]);
      expect(q.offset % 32).toBe(0);
      const gate = g.tensor('blk.0.ffn_gate.weight')!;
      expect(gate.dims).toEqual([64, 172]); // ne0 = in features first
      expect(gate.byteLength).toBe(64 * 172 * 4);
      for (const t of g.tensors) expect(t.offset + t.byteLength).toBeLessThanOrEqual(g.fileSize);
    } finally {
      g.close();
    }
  });

  it('maps to a ModelConfig matching the README', () => {
    const s = openGgufSource(STORIES_GGUF);
    try {
      expect(s.format).toBe('gguf');
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
        maxPositionEmbeddings: 2048,
        // The file carries output.weight (a copy of token_embd), so it is untied as stored.
        tieWordEmbeddings: false,
        attentionBias: false,
      });
      expect(Buffer.from(s.readTensor('output').data).equals(Buffer.from(s.readTensor('token_embd').data))).toBe(true);
    } finally {
      s.close();
    }
  });

  it('uses canonical names and [out, in] shapes', () => {
    const s = openGgufSource(STORIES_GGUF);
    try {
      const names = s.tensorNames();
      expect(names).toContain('token_embd');
      expect(names).toContain('blk.4.ffn_down');
      expect(names.some((n) => n.endsWith('.weight'))).toBe(false);
      const gate = s.readTensor('blk.0.ffn_gate');
      expect(gate.shape).toEqual([172, 64]);
      expect(gate.type).toBe('f32');
      expect(gate.data.byteLength).toBe(172 * 64 * 4);
      expect(s.readTensor('blk.0.ffn_down').shape).toEqual([64, 172]);
      expect(s.readTensor('blk.0.attn_k').shape).toEqual([32, 64]);
      expect(s.readTensor('token_embd').shape).toEqual([512, 64]);
      expect(s.readTensor('output_norm').shape).toEqual([64]);
      // Values are real numbers, not garbage from a misplaced offset: RMSNorm weights are O(1).
      const norm = new Float32Array(s.readTensor('blk.0.attn_norm').data.buffer);
      expect(norm.every((x) => Number.isFinite(x) && Math.abs(x) < 10)).toBe(true);
    } finally {
      s.close();
    }
  });

  it('extracts the SentencePiece tokenizer', () => {
    const s = openGgufSource(STORIES_GGUF);
    try {
      const t = s.tokenizer;
      expect(t?.kind).toBe('sentencepiece');
      if (t?.kind !== 'sentencepiece') return;
      expect(t.tokens).toHaveLength(512);
      expect(t.tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
      expect(t.scores).toHaveLength(512);
      expect(t.tokenTypes?.slice(0, 4)).toEqual([2, 3, 3, 6]);
      // padding_token_id is stored as 0xFFFFFFFF, which means "none".
      expect(t.special).toEqual({ bos: 1, eos: [2], unk: 0, addBos: true });
      expect(t.addSpacePrefix).toBe(true);
    } finally {
      s.close();
    }
  });
});

describe('GGUF: sources from written files', () => {
  it('round-trips metadata of every value type through the writer', () => {
    const path = nodePath.join(dir, 'meta.gguf');
    writeGguf(path, {
      metadata: [
        ['a.u8', gv.u8(200)],
        ['a.i8', gv.i8(-5)],
        ['a.u16', gv.u16(65000)],
        ['a.i16', gv.i16(-300)],
        ['a.u32', gv.u32(4e9)],
        ['a.i32', gv.i32(-2e9)],
        ['a.f32', gv.f32(0.1)],
        ['a.f64', gv.f64(Math.PI)],
        ['a.u64', gv.u64(2n ** 60n)],
        ['a.u64small', gv.u64(12345)],
        ['a.i64', gv.i64(-7)],
        ['a.bool', gv.bool(true)],
        ['a.str', gv.str('héllo ▁wörld')],
        ['a.arr.str', gv.arr(GgufValueType.STRING, ['x', '', 'zz'])],
        ['a.arr.i32', gv.arr(GgufValueType.INT32, [1, -2, 3])],
        ['a.arr.f32', gv.arr(GgufValueType.FLOAT32, [0.5, 1.5])],
        ['a.arr.bool', gv.arr(GgufValueType.BOOL, [true, false])],
        ['a.arr.u64', gv.arr(GgufValueType.UINT64, [1n, 2n])],
      ],
      tensors: [{ name: 'x', ggmlType: GgmlType.F32, dims: [8], data: new Uint8Array(32) }],
      alignment: 64,
    });
    const g = openGguf(path);
    try {
      const m = g.metadata;
      expect(m.get('a.u8')).toBe(200);
      expect(m.get('a.i8')).toBe(-5);
      expect(m.get('a.u16')).toBe(65000);
      expect(m.get('a.i16')).toBe(-300);
      expect(m.get('a.u32')).toBe(4e9);
      expect(m.get('a.i32')).toBe(-2e9);
      expect(m.get('a.f32')).toBe(0.1); // the shortest decimal of the stored f32
      expect(m.get('a.f64')).toBe(Math.PI);
      expect(m.get('a.u64')).toBe(2n ** 60n);
      expect(m.get('a.u64small')).toBe(12345);
      expect(m.get('a.i64')).toBe(-7);
      expect(m.get('a.bool')).toBe(true);
      expect(m.get('a.str')).toBe('héllo ▁wörld');
      expect(m.get('a.arr.str')).toEqual(['x', '', 'zz']);
      expect(Array.from(m.get('a.arr.i32') as Int32Array)).toEqual([1, -2, 3]);
      expect(Array.from(m.get('a.arr.f32') as Float32Array)).toEqual([0.5, 1.5]);
      expect(m.get('a.arr.bool')).toEqual([true, false]);
      expect(Array.from(m.get('a.arr.u64') as BigUint64Array)).toEqual([1n, 2n]);
      expect(g.alignment).toBe(64);
      expect(g.dataOffset % 64).toBe(0);
      expect(g.tensor('x')!.offset).toBe(g.dataOffset);
    } finally {
      g.close();
    }
  });

  it('reads tensor bytes exactly as written', () => {
    const path = nodePath.join(dir, 'tiny.gguf');
    const values = writeTinyGguf(path, { tokenizer: 'gpt2' });
    const s = openGgufSource(path);
    try {
      expect(s.config.hiddenSize).toBe(TINY.hidden);
      expect(s.config.vocabSize).toBe(TINY.vocab);
      expect(s.config.tieWordEmbeddings).toBe(true);
      expect(s.config.ropeTheta).toBe(1e6);
      for (const [stored, v] of values) {
        const t = s.readTensor(stored.replace(/\.weight$/, ''));
        expect(Buffer.from(t.data).equals(Buffer.from(v.buffer))).toBe(true);
      }
      const tok = s.tokenizer;
      expect(tok?.kind).toBe('bpe');
      if (tok?.kind === 'bpe') {
        expect(tok.merges).toEqual(['t 1', 't 2']);
        expect(tok.special).toEqual({ bos: 1, eos: [2], addBos: false });
      }
    } finally {
      s.close();
    }
  });

  it('maps qwen2 with biases (halves RoPE) and mistral (interleaved)', () => {
    const qwen = nodePath.join(dir, 'qwen.gguf');
    writeTinyGguf(qwen, { arch: 'qwen2', biases: true, untied: true });
    const s = openGgufSource(qwen);
    try {
      expect(s.config.architecture).toBe('qwen2');
      expect(s.config.attentionBias).toBe(true);
      expect(s.config.ropeInterleaved).toBe(false);
      expect(s.config.tieWordEmbeddings).toBe(false);
      expect(s.tensorNames()).toContain('blk.1.attn_k.bias');
      expect(s.readTensor('blk.1.attn_k.bias').shape).toEqual([16]);
    } finally {
      s.close();
    }
    const mistral = nodePath.join(dir, 'mistral.gguf');
    writeTinyGguf(mistral, { arch: 'mistral' });
    const m = openGgufSource(mistral);
    expect(m.config.ropeInterleaved).toBe(true);
    expect(m.config.attentionBias).toBe(false);
    m.close();
  });

  it('reads llama3 rope scaling metadata and exposes rope_freqs', () => {
    const path = nodePath.join(dir, 'rope.gguf');
    writeTinyGguf(path, {
      metadata: [
        ['llama.rope.scaling.type', gv.str('llama3')],
        ['llama.rope.scaling.factor', gv.f32(32)],
        ['llama.rope.scaling.low_freq_factor', gv.f32(1)],
        ['llama.rope.scaling.high_freq_factor', gv.f32(4)],
        ['llama.rope.scaling.original_context_length', gv.u32(8192)],
      ],
    });
    const s = openGgufSource(path);
    expect(s.config.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    s.close();

    const yarn = nodePath.join(dir, 'yarn.gguf');
    writeTinyGguf(yarn, { metadata: [['llama.rope.scaling.type', gv.str('yarn')], ['llama.rope.scaling.factor', gv.f32(4)]] });
    expect(() => openGgufSource(yarn)).toThrow(UnsupportedArchitectureError);
  });

  it('rejects unsupported architectures', () => {
    for (const arch of ['gpt2', 'phi3']) {
      const path = nodePath.join(dir, `${arch}.gguf`);
      writeTinyGguf(path, { arch });
      expect(() => openGgufSource(path)).toThrow(UnsupportedArchitectureError);
      expect(() => openGgufSource(path)).toThrow(new RegExp(arch));
    }
    const moe = nodePath.join(dir, 'moe.gguf');
    writeTinyGguf(moe, { metadata: [['llama.expert_count', gv.u32(8)]] });
    expect(() => openGgufSource(moe)).toThrow(UnsupportedArchitectureError);
  });

  it('opens files with unsupported tensor types, and fails naming the tensor when one is read', () => {
    const path = nodePath.join(dir, 'q3k.gguf');
    // Q3_K (not supported) needs rows of 256: use a shape whose every matrix row is 256 wide.
    writeTinyGguf(path, { weightType: GgmlType.Q3_K, shape: { hidden: 256, layers: 1, heads: 4, kvHeads: 2, inter: 256, vocab: 8 } });
    const s = openGgufSource(path);
    try {
      expect(s.readTensor('output_norm').type).toBe('f32');
      expect(() => s.readTensor('blk.0.attn_q')).toThrow(UnsupportedQuantizationError);
      expect(() => s.readTensor('blk.0.attn_q')).toThrow(/blk\.0\.attn_q\.weight.*Q3_K/);
    } finally {
      s.close();
    }
  });

  it('reads quantized tensors with their byte sizes', () => {
    const path = nodePath.join(dir, 'q8.gguf');
    writeTinyGguf(path, { weightType: GgmlType.Q8_0 });
    const s = openGgufSource(path);
    try {
      const q = s.readTensor('blk.0.attn_q');
      expect(q.type).toBe('q8_0');
      expect(q.shape).toEqual([32, 32]);
      expect(q.data.byteLength).toBe(32 * 34);
    } finally {
      s.close();
    }
  });
});
