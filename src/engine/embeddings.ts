/**
 * Token embeddings, looked up row by row from the stored (possibly quantized) table, so the
 * table stays as compact as the file keeps it.
 */
import { dequantizeRows } from '../model/quant.js';
import type { ModelSource, WeightTensor } from '../model/types.js';
import { InvalidStepError } from './errors.js';
import type { Embeddings } from './types.js';

export class EmbeddingTable implements Embeddings {
  readonly hiddenSize: number;
  readonly vocabSize: number;
  constructor(private readonly table: WeightTensor) {
    [this.vocabSize, this.hiddenSize] = table.shape as [number, number];
  }

  embed(ids: readonly number[]): Float32Array {
    const out = new Float32Array(ids.length * this.hiddenSize);
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new InvalidStepError(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
      out.set(dequantizeRows(this.table, id, 1), i * this.hiddenSize);
    });
    return out;
  }
}

export function loadEmbeddings(source: ModelSource): EmbeddingTable {
  return new EmbeddingTable(source.readTensor('token_embd'));
}
