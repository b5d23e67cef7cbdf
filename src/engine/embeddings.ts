/**
 * Token embeddings, looked up row by row in the stored (possibly quantized) table. Where the model source can read
 * part of a tensor, each lookup reads just its rows from the file (page-cached after the first time), as llama.cpp
 * reads them from its mapping, and the table is never held: that is the whole table's size saved (113 MB at f32 for
 * SmolLM2, 1 GB for Llama 3.2 1B's 128,256 rows). Otherwise the table is read once and kept as the file stores it.
 */
import { dequantizeRows, rowsAndCols } from '../model/quant.js';
import type { ModelSource, WeightTensor } from '../model/types.js';
import { InvalidStepError } from './errors.js';
import type { Embeddings } from './types.js';

export class EmbeddingTable implements Embeddings {
  readonly hiddenSize: number;
  readonly vocabSize: number;
  private readonly row: (id: number) => Float32Array;

  /** From a table in memory, or from a reader of its rows and the table's shape. */
  constructor(table: WeightTensor | { shape: readonly number[]; readRow: (id: number) => WeightTensor }) {
    const { rows, cols } = rowsAndCols(table.shape);
    [this.vocabSize, this.hiddenSize] = [rows, cols];
    this.row = 'readRow' in table ? (id) => dequantizeRows(table.readRow(id), 0, 1) : (id) => dequantizeRows(table, id, 1);
  }

  embed(ids: readonly number[]): Float32Array {
    const out = new Float32Array(ids.length * this.hiddenSize);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new InvalidStepError(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
      out.set(this.row(id), i * this.hiddenSize);
    });
    return out;
  }
}

export function loadEmbeddings(source: ModelSource): EmbeddingTable {
  const readRows = source.readTensorRows?.bind(source);
  if (!readRows) return new EmbeddingTable(source.readTensor('token_embd'));
  // The loaders check token_embd's shape against the config.
  const shape = [source.config.vocabSize, source.config.hiddenSize];
  return new EmbeddingTable({ shape, readRow: (id) => readRows('token_embd', id, 1) });
}
