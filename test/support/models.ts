/** Paths to the shared real models and a cache of generated random-weight models for tests. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeModel, MAKE_MODEL_VERSION, type MakeModelDtype, type ModelShapeName } from '../../src/model/make-model.js';

export const SHARED_MODELS = path.resolve(import.meta.dirname, '../../../shared/models');
/** The embedded default model (a bit-identical copy of shared/models/stories260K/stories260K.gguf). */
export { DEFAULT_MODEL_PATH as STORIES_GGUF } from '../../src/model/default-model.js';
export const SMOLLM_TOKENIZER_JSON = path.join(SHARED_MODELS, 'smollm2-135m-instruct-tokenizer/tokenizer.json');
export const STORIES_BIN = path.join(SHARED_MODELS, 'stories260K/stories260K.bin');
export const STORIES_TOKENIZER = path.join(SHARED_MODELS, 'stories260K/tok512.bin');

const cacheDir = path.join(os.tmpdir(), 'corolla-test-models');

/** Generates (once per machine) a random-weight GGUF of a real shape; later calls reuse the file. */
export function testModel(shape: ModelShapeName, dtype: MakeModelDtype, seed = 7): string {
  fs.mkdirSync(cacheDir, { recursive: true });
  const out = path.join(cacheDir, `${shape}-${dtype}-s${seed}-v${MAKE_MODEL_VERSION}.gguf`);
  if (!fs.existsSync(out)) {
    const tmp = `${out}.${process.pid}.partial`;
    makeModel({ shape, dtype, out: tmp, seed, smollmTokenizerPath: SMOLLM_TOKENIZER_JSON });
    fs.renameSync(tmp, out);
  }
  return out;
}
