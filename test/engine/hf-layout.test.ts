/**
 * Hugging Face checkpoints rotate the two halves of each head, while GGUF/Meta rotate adjacent pairs; HF's
 * converter permutes q/k rows accordingly. The same weights in either layout must give the same logits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadLocalModel } from '../../src/inference/local-model.js';
import { openModel } from '../../src/model/load.js';
import { dequantize } from '../../src/model/quant.js';
import { writeSafetensors } from '../../src/model/safetensors.js';
import { tempDir } from '../support/files.js';
import { toHalfLayout } from '../support/hf-twin.js';
import { STORIES_GGUF } from '../support/models.js';

describe('RoPE layouts', () => {
  it('an HF-layout safetensors checkpoint gives the logits of the GGUF', async () => {
    const gguf = await openModel(STORIES_GGUF);
    const c = gguf.config;
    const dir = tempDir('corolla-hf-');
    const f32 = (name: string) => dequantize(gguf.readTensor(name));
    const tensors: { name: string; dtype: 'F32'; shape: number[]; data: Float32Array }[] = [];
    const add = (name: string, from: string, transform?: (w: Float32Array) => Float32Array) => {
      const t = gguf.readTensor(from);
      tensors.push({ name, dtype: 'F32', shape: [...t.shape], data: transform ? transform(f32(from)) : f32(from) });
    };
    add('model.embed_tokens.weight', 'token_embd');
    add('model.norm.weight', 'output_norm');
    add('lm_head.weight', 'output');
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      add(`${p}.input_layernorm.weight`, `blk.${l}.attn_norm`);
      add(`${p}.self_attn.q_proj.weight`, `blk.${l}.attn_q`, (w) => toHalfLayout(w, c.numHeads, c.headDim, c.hiddenSize));
      add(`${p}.self_attn.k_proj.weight`, `blk.${l}.attn_k`, (w) => toHalfLayout(w, c.numKvHeads, c.headDim, c.hiddenSize));
      add(`${p}.self_attn.v_proj.weight`, `blk.${l}.attn_v`);
      add(`${p}.self_attn.o_proj.weight`, `blk.${l}.attn_output`);
      add(`${p}.post_attention_layernorm.weight`, `blk.${l}.ffn_norm`);
      add(`${p}.mlp.gate_proj.weight`, `blk.${l}.ffn_gate`);
      add(`${p}.mlp.up_proj.weight`, `blk.${l}.ffn_up`);
      add(`${p}.mlp.down_proj.weight`, `blk.${l}.ffn_down`);
    }
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors.map((t) => ({ ...t, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) })) as never);
    fs.writeFileSync(
      path.join(dir, 'config.json'),
      JSON.stringify({
        architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
        num_hidden_layers: c.numLayers, num_attention_heads: c.numHeads, num_key_value_heads: c.numKvHeads, vocab_size: c.vocabSize,
        rms_norm_eps: c.rmsNormEps, rope_theta: c.ropeTheta, max_position_embeddings: c.maxPositionEmbeddings, tie_word_embeddings: false,
        bos_token_id: 1, eos_token_id: 2,
      }),
    );
    const hf = await openModel(dir);
    expect(hf.config.ropeInterleaved).toBe(false);
    const a = await loadLocalModel(gguf);
    const b = await loadLocalModel(hf);
    const sa = await a.openSession(32);
    const sb = await b.openSession(32);
    let la = await sa.next([1, 403, 407, 261]);
    let lb = await sb.next([1, 403, 407, 261]);
    for (let step = 0; step < 8; step++) {
      for (let i = 0; i < la.length; i++) expect(Math.abs(la[i]! - lb[i]!)).toBeLessThan(1e-4);
      const next = la.indexOf(Math.max(...la));
      la = await sa.next([next]);
      lb = await sb.next([next]);
    }
    await a.close();
    await b.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
