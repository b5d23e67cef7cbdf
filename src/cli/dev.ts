/**
 * `corolla dev <tool>`: developer tools.
 *   corolla dev make-model --shape NAME --dtype f32|f16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k|q4_k_m|q5_k_m --out FILE.gguf [--seed N]
 */
import { parseArgs } from 'node:util';
import { humanBytes, progressTask } from '../util/progress.js';
import { terminalProgress } from './progress.js';
import { MakeModelError } from '../model/errors.js';
import { MAKE_MODEL_DTYPES, makeModel, MODEL_SHAPES, type MakeModelDtype, type ModelShapeName } from '../model/make-model.js';

const USAGE = `usage: corolla dev make-model --shape ${Object.keys(MODEL_SHAPES).join('|')} --dtype ${MAKE_MODEL_DTYPES.join('|')} --out FILE.gguf [--seed N] [--tokenizer tokenizer.json]

Writes a GGUF v3 model with deterministic random weights at a real model's shape (for benchmarks and tests).
Shapes with SmolLM2's vocabulary need its tokenizer.json (--tokenizer); stories-tiny uses the embedded model's.`;

export async function run(argv: string[]): Promise<void> {
  const [tool, ...rest] = argv;
  if (!tool || tool === '--help' || tool === '-h') {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (tool !== 'make-model') {
    process.stderr.write(`corolla dev: unknown tool "${tool}"\n\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      shape: { type: 'string' },
      dtype: { type: 'string', default: 'f32' },
      out: { type: 'string' },
      seed: { type: 'string', default: '0' },
      tokenizer: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  if (!values.shape || !values.out) throw new MakeModelError(`--shape and --out are required\n${USAGE}`);
  if (!(values.shape in MODEL_SHAPES)) throw new MakeModelError(`unknown --shape "${values.shape}" (known: ${Object.keys(MODEL_SHAPES).join(', ')})`);
  if (!MAKE_MODEL_DTYPES.includes(values.dtype as MakeModelDtype)) throw new MakeModelError(`unknown --dtype "${values.dtype}" (known: ${MAKE_MODEL_DTYPES.join(', ')})`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new MakeModelError(`--seed must be an integer in 0..4294967295`);

  const progress = progressTask(terminalProgress(), `writing ${values.out}`);
  const { bytes } = makeModel({
    shape: values.shape as ModelShapeName,
    dtype: values.dtype as MakeModelDtype,
    out: values.out,
    seed,
    ...(values.tokenizer ? { smollmTokenizerPath: values.tokenizer } : {}),
    onProgress: (done, total) => progress.update(done, total),
  });
  progress.done();
  process.stdout.write(`wrote ${values.out} (${values.shape}, ${values.dtype}, seed ${seed}, ${humanBytes(bytes)})\n`);
}
