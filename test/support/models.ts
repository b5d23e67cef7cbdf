/**
 * Every model a test uses: paths into ../shared/models (beside the checkout; test files that need them carry the
 * "needs ../shared/models" mark), the embedded default model, and random-weight models generated at real shapes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { makeModel, MAKE_MODEL_VERSION, type MakeModelDtype, type ModelShapeName } from '../../src/model/make-model.js';
import { DEFAULT_MODEL_PATH } from '../../src/model/default-model.js';

export const SHARED_MODELS = path.resolve(import.meta.dirname, '../../../shared/models');
/** The embedded default model (a bit-identical copy of shared/models/stories260K/stories260K.gguf). */
export const STORIES_GGUF = DEFAULT_MODEL_PATH;
/** stories260K as llama2.c wrote it, and its SentencePiece tokenizer. */
export const STORIES_BIN = path.join(SHARED_MODELS, 'stories260K/stories260K.bin');
export const STORIES_TOKENIZER = path.join(SHARED_MODELS, 'stories260K/tok512.bin');
export const LLAMA2_TOKENIZER_BIN = path.join(SHARED_MODELS, 'llama2-tokenizer/tokenizer.bin');
export const SMOLLM_TOKENIZER_DIR = path.join(SHARED_MODELS, 'smollm2-135m-instruct-tokenizer');
export const SMOLLM_TOKENIZER_JSON = path.join(SMOLLM_TOKENIZER_DIR, 'tokenizer.json');

export function openStories(): Promise<LoadedModelSource> {
  return openModel(STORIES_GGUF);
}

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
