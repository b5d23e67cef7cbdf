/**
 * llama2.c checkpoints (`run.c`'s format) and their tokenizer.bin.
 *
 * Checkpoint: 7 × int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
 * vocab_size means an untied classifier follows), then f32 arrays: token embedding, rms_att[L], wq[L], wk[L],
 * wv[L], wo[L], rms_ffn[L], w1[L] (gate), w2[L] (down), w3[L] (up), rms_final, two freq_cis tables of
 * seq_len × head_size/2 (unused: we compute RoPE), then the optional classifier. Every matrix is row-major
 * [out, in], which is already our layout, and q/k rotate adjacent pairs (ropeInterleaved).
 *
 * Tokenizer: int32 max_token_length, then per token: f32 score, int32 length, bytes.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { checkConfig, verifyTensorShapes } from './config.js';
import { CorruptModelError, MissingTensorError, ModelNotFoundError } from './errors.js';
import { rowBytes } from './quant.js';
import { readFully } from './fs-util.js';
import type { CanonicalTensorName, ModelConfig, ModelSource, TokenizerData, WeightTensor } from './types.js';
import { InvalidTokenizerError } from './tokenizer/errors.js';
import { readLlama2cTokenizer as readTokenizerFile } from './tokenizer/llama2c.js';

export interface Llama2cModelSource extends ModelSource {
  readonly format: 'llama2c';
  /** The checkpoint (the weights); the tokenizer file is not part of the fingerprint. */
  readonly files: readonly string[];
  /** The tokenizer file used, if any. */
  readonly tokenizerPath?: string;
}

const HEADER_BYTES = 28;

interface Entry {
  offset: number;
  shape: number[];
}

function openFile(path: string): number {
  try {
    return fs.openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelNotFoundError(path, { cause: error });
    throw error;
  }
}

export function openLlama2cSource(path: string, options: { tokenizerPath?: string } = {}): Llama2cModelSource {
  const fd = openFile(path);
  try {
    return build(fd, path, options);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

function build(fd: number, path: string, options: { tokenizerPath?: string }): Llama2cModelSource {
  const size = fs.fstatSync(fd).size;
  if (size < HEADER_BYTES) throw new CorruptModelError(path, `file of ${size} bytes is shorter than the llama2.c header`);
  const header = Buffer.alloc(HEADER_BYTES);
  fs.readSync(fd, header, 0, HEADER_BYTES, 0);
  const [dim, hidden, layers, heads, kvHeads, vocabRaw, seqLen] = Array.from({ length: 7 }, (_, i) => header.readInt32LE(4 * i)) as [
    number, number, number, number, number, number, number,
  ];
  const vocab = Math.abs(vocabRaw);
  const shared = vocabRaw > 0;
  const dims: Array<[string, number]> = [
    ['dim', dim], ['hidden_dim', hidden], ['n_layers', layers], ['n_heads', heads], ['n_kv_heads', kvHeads], ['vocab_size', vocab], ['seq_len', seqLen],
  ];
  for (const [name, value] of dims) {
    if (value <= 0 || value > 1 << 24) throw new CorruptModelError(path, `header field ${name} is ${value}`);
  }
  if (dim % heads !== 0 || heads % kvHeads !== 0) throw new CorruptModelError(path, `dim ${dim}, ${heads} heads, ${kvHeads} KV heads do not divide`);
  const headSize = dim / heads;
  const kvDim = kvHeads * headSize;

  // Lay out every array in file order; the expected size must match the file exactly.
  const entries = new Map<CanonicalTensorName, Entry>();
  let offset = HEADER_BYTES;
  const add = (name: string | null, shape: number[]) => {
    if (name) entries.set(name, { offset, shape });
    offset += 4 * shape.reduce((a, b) => a * b, 1);
  };
  const perLayer = (suffix: string, shape: number[]) => {
    for (let l = 0; l < layers; l++) add(`blk.${l}.${suffix}`, shape);
  };
  add('token_embd', [vocab, dim]);
  perLayer('attn_norm', [dim]);
  perLayer('attn_q', [dim, dim]);
  perLayer('attn_k', [kvDim, dim]);
  perLayer('attn_v', [kvDim, dim]);
  perLayer('attn_output', [dim, dim]);
  perLayer('ffn_norm', [dim]);
  perLayer('ffn_gate', [hidden, dim]);
  perLayer('ffn_down', [dim, hidden]);
  perLayer('ffn_up', [hidden, dim]);
  add('output_norm', [dim]);
  add(null, [seqLen, headSize / 2]); // freq_cis_real
  add(null, [seqLen, headSize / 2]); // freq_cis_imag
  if (!shared) add('output', [vocab, dim]);
  if (offset !== size) {
    throw new CorruptModelError(path, `the header implies ${offset} bytes (dim ${dim}, ${layers} layers, vocab ${vocabRaw}, seq_len ${seqLen}) but the file has ${size}`);
  }

  const config: ModelConfig = {
    architecture: 'llama',
    hiddenSize: dim,
    intermediateSize: hidden,
    numLayers: layers,
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim: headSize,
    vocabSize: vocab,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeInterleaved: true,
    maxPositionEmbeddings: seqLen,
    tieWordEmbeddings: shared,
    attentionBias: false,
  };
  checkConfig(path, config);
  verifyTensorShapes(path, config, new Map([...entries].map(([name, e]) => [name, e.shape])));

  const tokenizerPath = options.tokenizerPath ?? findTokenizer(path, vocab);
  if (options.tokenizerPath && !fs.existsSync(options.tokenizerPath)) throw new ModelNotFoundError(`tokenizer ${options.tokenizerPath}`);
  const tokenizer = tokenizerPath ? readLlama2cTokenizer(tokenizerPath, vocab) : undefined;

  let closed = false;
  return {
    location: path,
    format: 'llama2c',
    files: [path],
    ...(tokenizerPath ? { tokenizerPath } : {}),
    config,
    ...(tokenizer ? { tokenizer } : {}),
    tensorNames: () => [...entries.keys()],
    readTensor(name: CanonicalTensorName): WeightTensor {
      const e = entries.get(name);
      if (!e) throw new MissingTensorError(`tensor "${name}" (in ${path})`);
      if (closed) throw new Error(`${path} is closed`);
      const bytes = 4 * e.shape.reduce((a, b) => a * b, 1);
      const data = new Uint8Array(bytes);
      readFully(fd, data, 0, bytes, e.offset, path);
      return { name, type: 'f32', shape: e.shape, data };
    },
    readTensorRows(name: CanonicalTensorName, start: number, count: number): WeightTensor {
      const e = entries.get(name);
      if (!e) throw new MissingTensorError(`tensor "${name}" (in ${path})`);
      if (closed) throw new Error(`${path} is closed`);
      const rows = rowBytes({ name, type: 'f32', shape: e.shape }, start, count);
      const data = new Uint8Array(rows.length);
      readFully(fd, data, 0, rows.length, e.offset + rows.start, path);
      return { name, type: 'f32', shape: rows.shape, data };
    },
    close() {
      if (closed) return;
      closed = true;
      fs.closeSync(fd);
    },
  };
}

/** tokenizer.bin, then tok{vocab}.bin, beside the checkpoint. */
function findTokenizer(checkpoint: string, vocab: number): string | undefined {
  const dir = nodePath.dirname(checkpoint);
  for (const name of ['tokenizer.bin', `tok${vocab}.bin`]) {
    const candidate = nodePath.join(dir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Reads a llama2.c tokenizer.bin holding exactly `vocab` tokens; a file that does not fit the model is corrupt. */
export function readLlama2cTokenizer(path: string, vocab: number): TokenizerData {
  try {
    return readTokenizerFile(path, { vocabSize: vocab, exact: true });
  } catch (error) {
    if (error instanceof InvalidTokenizerError) throw new CorruptModelError(path, error.message, { cause: error });
    throw error;
  }
}
