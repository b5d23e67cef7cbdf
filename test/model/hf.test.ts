// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MissingTensorError, ModelNotFoundError, UnsupportedArchitectureError, UnsupportedQuantizationError } from '../../src/model/errors.js';
import { canonicalHfName, openHfSource } from '../../src/model/hf-source.js';
import { dequantize, f16ToF32, f32ToF16 } from '../../src/model/quant.js';
import { openSafetensors, writeSafetensors } from '../../src/model/safetensors.js';
import { tempDir, TINY, writeTinyHf } from '../support/files.js';
import { SMOLLM_TOKENIZER_DIR } from '../support/models.js';

const dir = tempDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => nodePath.join(dir, `m${n++}`);

describe('safetensors', () => {
  it('writes and reads back tensors, metadata and an aligned header', () => {
    const path = nodePath.join(dir, 'a.safetensors');
    const a = new Float32Array([1, 2, 3, 4, 5, 6]);
    const b = new Uint8Array(new Uint16Array([f32ToF16(0.5), f32ToF16(-1)]).buffer);
    writeSafetensors(path, [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: new Uint8Array(a.buffer) },
      { name: 'b', dtype: 'F16', shape: [2], data: b },
      { name: 'c', dtype: 'I64', shape: [1], data: new Uint8Array(8) },
    ], { format: 'pt' });
    const headerLength = Number(fs.readFileSync(path).readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const f = openSafetensors(path);
    try {
      expect(f.metadata).toEqual({ format: 'pt' });
      expect(f.tensors.get('a')).toMatchObject({ dtype: 'F32', type: 'f32', shape: [2, 3], byteLength: 24 });
      expect(Array.from(new Float32Array(f.readTensorBytes('a').buffer))).toEqual([1, 2, 3, 4, 5, 6]);
      expect(Array.from(new Uint16Array(f.readTensorBytes('b').buffer), f16ToF32)).toEqual([0.5, -1]);
      expect(f.tensors.get('c')?.type).toBeUndefined();
      expect(() => f.readTensorBytes('c')).toThrow(UnsupportedQuantizationError);
      expect(() => f.readTensorBytes('zzz')).toThrow(MissingTensorError);
    } finally {
      f.close();
    }
  });
});

describe('Hugging Face directories', () => {
  it('maps names', () => {
    expect(canonicalHfName('model.embed_tokens.weight')).toBe('token_embd');
    expect(canonicalHfName('model.norm.weight')).toBe('output_norm');
    expect(canonicalHfName('lm_head.weight')).toBe('output');
    expect(canonicalHfName('model.layers.12.self_attn.q_proj.weight')).toBe('blk.12.attn_q');
    expect(canonicalHfName('model.layers.0.self_attn.k_proj.bias')).toBe('blk.0.attn_k.bias');
    expect(canonicalHfName('model.layers.3.self_attn.o_proj.weight')).toBe('blk.3.attn_output');
    expect(canonicalHfName('model.layers.3.input_layernorm.weight')).toBe('blk.3.attn_norm');
    expect(canonicalHfName('model.layers.3.post_attention_layernorm.weight')).toBe('blk.3.ffn_norm');
    expect(canonicalHfName('model.layers.3.mlp.gate_proj.weight')).toBe('blk.3.ffn_gate');
    expect(canonicalHfName('model.layers.3.mlp.up_proj.weight')).toBe('blk.3.ffn_up');
    expect(canonicalHfName('model.layers.3.mlp.down_proj.weight')).toBe('blk.3.ffn_down');
    expect(canonicalHfName('model.layers.3.self_attn.rotary_emb.inv_freq')).toBeUndefined();
  });

  it('loads a single-file f32 Llama with exact tensors', () => {
    const d = fresh();
    const values = writeTinyHf(d, { tokenizer: true });
    const s = openHfSource(d);
    try {
      expect(s.format).toBe('safetensors');
      expect(s.config).toEqual({
        architecture: 'llama',
        hiddenSize: 32,
        intermediateSize: 64,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 8,
        vocabSize: 64,
        rmsNormEps: 1e-5,
        ropeTheta: 500000,
        ropeInterleaved: false,
        maxPositionEmbeddings: 1024,
        tieWordEmbeddings: false,
        attentionBias: false,
      });
      expect(s.tensorNames()).toHaveLength(3 + 2 * 9);
      const q = s.readTensor('blk.1.attn_q');
      expect(q).toMatchObject({ name: 'blk.1.attn_q', type: 'f32', shape: [32, 32] });
      expect(Array.from(new Float32Array(q.data.buffer))).toEqual(Array.from(values.get('model.layers.1.self_attn.q_proj.weight')!));
      expect(s.readTensor('output').shape).toEqual([64, 32]);
      expect(s.readTensor('blk.0.ffn_down').shape).toEqual([32, 64]);
      expect(s.files).toEqual([nodePath.join(d, 'model.safetensors')]);
    } finally {
      s.close();
    }
  });

  it('reads the tokenizer: special tokens resolved to ids, eos merged from all configs, chat template', () => {
    const d = fresh();
    writeTinyHf(d, { tokenizer: true });
    const s = openHfSource(d);
    const t = s.tokenizer;
    s.close();
    expect(t?.kind).toBe('hf');
    if (t?.kind !== 'hf') return;
    // tokenizer_config: eos <|im_end|> (2); config.json eos 2; generation_config [2, 0].
    expect(t.special).toEqual({ bos: 1, eos: [2, 0], pad: 2, unk: 0, addBos: false });
    expect(t.chatTemplate).toContain('<|im_start|>');
    expect((t.tokenizerJson as { model: { type: string } }).model.type).toBe('BPE');
    expect(t.tokenizerConfig?.bos_token).toBe('<|im_start|>');
    // A chat_template.jinja file wins over tokenizer_config.json.
    fs.writeFileSync(nodePath.join(d, 'chat_template.jinja'), '{{ messages }}');
    const again = openHfSource(d);
    expect(again.tokenizer?.kind === 'hf' && again.tokenizer.chatTemplate).toBe('{{ messages }}');
    again.close();
  });

  it('the shared SmolLM2 config maps to the real shape, and its missing weights are reported', () => {
    expect(() => openHfSource(SMOLLM_TOKENIZER_DIR)).toThrow(ModelNotFoundError);
    expect(() => openHfSource(SMOLLM_TOKENIZER_DIR)).toThrow(/model\.safetensors/);
  });

  it('loads f16 and bf16 weights as stored', () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const d = fresh();
      const values = writeTinyHf(d, { dtype, tied: true });
      const s = openHfSource(d);
      try {
        expect(s.config.tieWordEmbeddings).toBe(true);
        expect(s.tensorNames()).not.toContain('output');
        const t = s.readTensor('blk.0.ffn_up');
        expect(t.type).toBe(dtype.toLowerCase());
        expect(t.data.byteLength).toBe(64 * 32 * 2);
        const x = dequantize(t);
        const ref = values.get('model.layers.0.mlp.up_proj.weight')!;
        const tolerance = dtype === 'F16' ? 2 ** -11 : 2 ** -8;
        for (let i = 0; i < ref.length; i++) expect(Math.abs(x[i]! - ref[i]!)).toBeLessThanOrEqual(Math.abs(ref[i]!) * tolerance + 1e-7);
      } finally {
        s.close();
      }
    }
  });

  it('rejects unsupported dtypes when the tensor is read', () => {
    const d = fresh();
    writeTinyHf(d, { dtype: 'I64' });
    const s = openHfSource(d);
    try {
      expect(() => s.readTensor('blk.0.attn_q')).toThrow(UnsupportedQuantizationError);
      expect(() => s.readTensor('blk.0.attn_q')).toThrow(/model\.layers\.0\.self_attn\.q_proj\.weight.*I64/);
    } finally {
      s.close();
    }
  });

  it('loads sharded checkpoints through the index', () => {
    const d = fresh();
    const values = writeTinyHf(d, { shards: 3 });
    expect(fs.existsSync(nodePath.join(d, 'model.safetensors'))).toBe(false);
    const s = openHfSource(d);
    try {
      expect(s.files).toHaveLength(3);
      for (const [hfName, v] of values) {
        const name = canonicalHfName(hfName);
        if (!name) continue;
        expect(Array.from(new Float32Array(s.readTensor(name).data.buffer)), name).toEqual(Array.from(v));
      }
    } finally {
      s.close();
    }
  });

  it('Qwen2: q/k/v biases, Mistral: a sliding window', () => {
    const q = fresh();
    writeTinyHf(q, { architecture: 'Qwen2ForCausalLM', tied: true });
    const s = openHfSource(q);
    expect(s.config.architecture).toBe('qwen2');
    expect(s.config.attentionBias).toBe(true);
    expect(s.config.ropeInterleaved).toBe(false);
    expect(s.readTensor('blk.1.attn_v.bias').shape).toEqual([16]);
    s.close();
    const m = fresh();
    writeTinyHf(m, { architecture: 'MistralForCausalLM', config: { sliding_window: 512, max_position_embeddings: 32768, head_dim: null } });
    const ms = openHfSource(m);
    expect(ms.config.architecture).toBe('mistral');
    expect(ms.config.maxPositionEmbeddings).toBe(32768);
    expect(ms.config.slidingWindow).toBe(512);
    expect(ms.config.headDim).toBe(8);
    ms.close();
  });

  it('Llama 3 rope scaling and an explicit head_dim', () => {
    const d = fresh();
    writeTinyHf(d, {
      config: { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
    });
    const s = openHfSource(d);
    expect(s.config.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    s.close();
    const bad = fresh();
    writeTinyHf(bad, { config: { rope_scaling: { type: 'dynamic', factor: 2 } } });
    expect(() => openHfSource(bad)).toThrow(UnsupportedArchitectureError);
  });

  it('a config without tie_word_embeddings and no lm_head is tied; a tied model with lm_head ignores it', () => {
    const d = fresh();
    writeTinyHf(d, { tied: true, config: { tie_word_embeddings: undefined } });
    const s = openHfSource(d);
    expect(s.config.tieWordEmbeddings).toBe(true);
    s.close();
    const e = fresh();
    writeTinyHf(e, { tied: true, lmHeadAnyway: true });
    const t = openHfSource(e);
    expect(t.tensorNames()).not.toContain('output');
    t.close();
  });

  it('rejects other architectures and inconsistent files', () => {
    const d = fresh();
    writeTinyHf(d, { architecture: 'GPT2LMHeadModel' });
    expect(() => openHfSource(d)).toThrow(UnsupportedArchitectureError);
    const p = fresh();
    writeTinyHf(p, { architecture: 'Phi3ForCausalLM' });
    expect(() => openHfSource(p)).toThrow(/Phi3ForCausalLM/);
    const wrong = fresh();
    writeTinyHf(wrong, { config: { intermediate_size: 96 } });
    expect(() => openHfSource(wrong)).toThrow(/ffn_gate/);
    const missing = fresh();
    writeTinyHf(missing);
    fs.rmSync(nodePath.join(missing, 'config.json'));
    expect(() => openHfSource(missing)).toThrow(ModelNotFoundError);
    expect(() => openHfSource(nodePath.join(dir, 'does-not-exist'))).toThrow(ModelNotFoundError);
  });

  it('vocab comes from config.json and must match the embedding', () => {
    const d = fresh();
    writeTinyHf(d, { config: { vocab_size: TINY.vocab + 1 } });
    expect(() => openHfSource(d)).toThrow(/vocab_size/);
  });
});
