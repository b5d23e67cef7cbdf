/**
 * `corolla perplexity`: perplexity of a text file under a model and, with --kl-base, the mean KL divergence from a
 * base model and top-1 agreement with it (src/inference/perplexity.ts says how tokens are windowed and scored).
 * Results on stdout (with --json, the last line is one JSON object); progress on stderr.
 */
import * as fs from 'node:fs';
import { LocalModel } from '../inference/local-model.js';
import { perplexity } from '../inference/perplexity.js';
import { hubOptionsFromEnv } from './env.js';
import { UsageError } from './errors.js';
import { numberOption, parse } from './options.js';
import { terminalProgress } from './progress.js';

const usage = `usage: corolla perplexity --model M --file TEXT [--ctx N] [--kl-base BASE_MODEL] [--json]

  --model M          GGUF file, llama2.c .bin, Hugging Face directory, or Hub repo id
  --file TEXT        the text to score (UTF-8), tokenized with the model's tokenizer, BOS first
  --ctx N            windows of N tokens, each scored on its second half, as llama.cpp's perplexity does
                     (default: the whole text as one window, every token after BOS scored)
  --kl-base B        also the mean KL(B ‖ M) per token and top-1 agreement with B (same vocabulary; e.g. the
                     F32 model M was quantized from), teacher-forced on the same tokens
  --threads N        onnxruntime threads (default 1)
  --json             print {"tokens","ppl","kl_mean","top1_agree"} as the last stdout line`;

const flags = {
  model: { type: 'string' },
  file: { type: 'string' },
  ctx: { type: 'string' },
  'kl-base': { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export async function run(argv: string[]): Promise<void> {
  const values = parse(argv, flags, usage);
  if (!values.model || !values.file) throw new UsageError(`--model and --file are required\n\n${usage}`);
  const ctx = numberOption(values.ctx, 'ctx', { integer: true, min: 4 });
  const threads = numberOption(values.threads, 'threads', { integer: true, min: 1 }) ?? 1;
  let text: string;
  try {
    text = fs.readFileSync(values.file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --file ${values.file}: ${(error as Error).message}`);
  }
  const open = (model: string) => LocalModel.open(model, { threads, hub: hubOptionsFromEnv(), onProgress: terminalProgress() });
  const model = await open(values.model);
  const base = values['kl-base'] ? await open(values['kl-base']).catch(async (error: unknown) => {
    await model.close();
    throw error;
  }) : undefined;
  try {
    const result = await perplexity(model, text, { ...(ctx !== undefined ? { ctx } : {}), ...(base ? { base } : {}), onProgress: terminalProgress() });
    if (values.json) {
      process.stdout.write(JSON.stringify({ tokens: result.tokens, ppl: result.ppl, ...(base ? { kl_mean: result.klMean, top1_agree: result.top1Agree } : {}) }) + '\n');
    } else {
      process.stdout.write(`tokens scored: ${result.tokens}\nperplexity: ${result.ppl.toFixed(4)}\n`);
      if (base) process.stdout.write(`mean KL divergence: ${result.klMean!.toExponential(4)}\ntop-1 agreement: ${(result.top1Agree! * 100).toFixed(2)}%\n`);
    }
  } finally {
    await base?.close();
    await model.close();
  }
}
