/**
 * Embeddings looked up row by row from the file equal those of the whole table held in memory, for f32 and block
 * quantized tables, and ids outside the vocabulary are refused either way.
 */
import { describe, expect, it } from 'vitest';
import { EmbeddingTable, loadEmbeddings } from '../../src/engine/embeddings.js';
import { InvalidStepError } from '../../src/engine/errors.js';
import { openModel } from '../../src/model/load.js';
import { STORIES_GGUF, testModel } from '../support/models.js';

const models = [
  { name: 'stories260K f32', path: () => STORIES_GGUF },
  { name: 'stories-256 q4_k', path: () => testModel('stories-256', 'q4_k') },
  { name: 'stories-256 q8_0', path: () => testModel('stories-256', 'q8_0') },
];

describe('embeddings read by rows', () => {
  it.each(models)('match the table held whole ($name)', async ({ path }) => {
    const source = await openModel(path());
    try {
      let rowReads = 0;
      const counting = Object.assign(Object.create(source) as typeof source, {
        readTensorRows: (name: string, start: number, count: number) => (rowReads++, source.readTensorRows!(name, start, count)),
      });
      const rows = loadEmbeddings(counting);
      const whole = new EmbeddingTable(source.readTensor('token_embd'));
      expect([rows.vocabSize, rows.hiddenSize]).toEqual([whole.vocabSize, whole.hiddenSize]);
      const ids = [0, 1, 2, 255, 256, whole.vocabSize - 1, 7, 7];
      expect(rows.embed(ids)).toEqual(whole.embed(ids));
      expect(rowReads).toBe(ids.length);
      for (const bad of [-1, whole.vocabSize, 1.5]) {
        expect(() => rows.embed([bad])).toThrow(InvalidStepError);
        expect(() => whole.embed([bad])).toThrow(InvalidStepError);
      }
    } finally {
      source.close();
    }
  });

  it('read the table whole from a source that cannot read rows', async () => {
    const source = await openModel(STORIES_GGUF);
    try {
      const table = loadEmbeddings({ ...source, readTensorRows: undefined });
      expect(table.embed([3, 4])).toEqual(loadEmbeddings(source).embed([3, 4]));
    } finally {
      source.close();
    }
  });

  it('refuse to read once the model file is closed', async () => {
    const source = await openModel(STORIES_GGUF);
    const table = loadEmbeddings(source);
    source.close();
    expect(() => table.embed([3])).toThrow(/closed/);
  });
});
