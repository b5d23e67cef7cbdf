/**
 * `corolla generate`: streams only the generated text to stdout; logs, progress and --stats go to stderr.
 * Runs the whole model locally, or through a swarm with --swarm.
 */
import { generate } from '../engine/generate.js';
import { loadLocalModel } from '../engine/local-model.js';
import { openModel } from '../model/load.js';
import { createTokenizer } from '../model/tokenizer/index.js';
import type { Tokenizer } from '../model/types.js';
import { InvalidTokenizerError } from '../model/tokenizer/errors.js';
import type { InferenceSession } from '../engine/generate.js';
import { numberOption, parse, samplingFlags, samplingFrom, samplingUsage, UsageError } from './options.js';

const usage = `usage: corolla generate --model <path|hf-repo> [options]

  --model M              GGUF file, llama2.c .bin, Hugging Face directory, or Hub repo id
  --tokenizer PATH       tokenizer for llama2.c checkpoints (default: tokenizer.bin beside the model)
  --prompt TEXT          prompt (default: start from BOS)
  --max-tokens N         tokens to generate (default 256)
  --threads N            onnxruntime threads (default 1)
  --device cpu|cuda      onnxruntime execution provider (default cpu; cuda needs a CUDA build of onnxruntime-node)
  --stats                print one JSON line of timings to stderr
  --swarm                run through a swarm instead of locally (needs --bootstrap)
  --bootstrap ADDRS      comma-separated multiaddrs of swarm peers
${samplingUsage}`;

export const generateFlags = {
  model: { type: 'string' },
  tokenizer: { type: 'string' },
  prompt: { type: 'string' },
  'max-tokens': { type: 'string' },
  threads: { type: 'string' },
  device: { type: 'string' },
  stats: { type: 'boolean' },
  swarm: { type: 'boolean' },
  bootstrap: { type: 'string' },
  ...samplingFlags,
} as const;

/** What a generation needs, whether the model runs here or in a swarm. */
export interface InferenceBackend {
  readonly tokenizer: Tokenizer;
  openSession(maxLength: number): Promise<InferenceSession>;
  close(): Promise<void>;
}

export async function run(argv: string[]): Promise<void> {
  const values = parse(argv, generateFlags, usage);
  if (!values.model) throw new UsageError(`--model is required\n\n${usage}`);
  const maxTokens = numberOption(values['max-tokens'], 'max-tokens', { integer: true, min: 0 }) ?? 256;
  const threads = numberOption(values.threads, 'threads', { integer: true, min: 1 }) ?? 1;
  const sampling = samplingFrom(values);
  const device = values.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`--device must be cpu or cuda, got "${device}"`);

  const loadStarted = performance.now();
  let backend: InferenceBackend;
  if (values.swarm) {
    if (!values.bootstrap) throw new UsageError('--swarm needs --bootstrap ADDR[,ADDR…]');
    backend = await openSwarmCliBackend({ model: values.model, tokenizerPath: values.tokenizer, bootstrap: values.bootstrap, threads });
  } else {
    backend = await openLocalBackend(values.model, { tokenizerPath: values.tokenizer, threads, device });
  }
  const loadMs = performance.now() - loadStarted;

  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const tokenizer = backend.tokenizer;
    const prompt = values.prompt !== undefined ? tokenizer.encode(values.prompt) : [];
    if (prompt.length === 0) {
      if (tokenizer.special.bos === undefined) throw new UsageError('this model has no BOS token; give a --prompt');
      prompt.push(tokenizer.special.bos);
    }
    const session = await backend.openSession(prompt.length + maxTokens);
    const stream = generate(session, tokenizer, prompt, { ...sampling, maxTokens, signal: abort.signal });
    for await (const event of stream) if (event.text) process.stdout.write(event.text);
    if (process.stdout.isTTY) process.stdout.write('\n'); // a pipe gets exactly the generated text
    await session.close();
    if (values.stats) {
      const s = stream.stats;
      process.stderr.write(
        JSON.stringify({
          load_ms: Math.round(loadMs),
          prompt_tokens: s.promptTokens,
          generated_tokens: s.generatedTokens,
          prefill_tok_s: round(s.promptTokens / (s.prefillMs / 1000)),
          decode_tok_s: s.decodeSteps > 0 ? round(s.decodeSteps / (s.decodeMs / 1000)) : null,
          finish_reason: s.finishReason,
          seed: sampling.seed ?? null,
        }) + '\n',
      );
    }
  } finally {
    process.off('SIGINT', onSignal);
    await backend.close();
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

/** The swarm backend with its route, failures and recoveries reported on stderr, for people watching. */
export async function openSwarmCliBackend(options: { model: string; tokenizerPath?: string; bootstrap: string; threads: number }): Promise<InferenceBackend> {
  const { openSwarmBackend } = await import('../client/backend.js');
  const say = (line: string) => process.stderr.write(`[swarm] ${line}\n`);
  return openSwarmBackend({
    model: options.model,
    tokenizerPath: options.tokenizerPath,
    bootstrap: options.bootstrap.split(','),
    threads: options.threads,
    log: say,
    // Failures, bans and recoveries come through `log`; the session's route is reported here in full.
    onEvent: (event) => {
      if (event.type === 'route') say(`session route: ${event.hops.map((h) => `[${h.start},${h.end})@${h.peerId}`).join(' → ')}`);
    },
  });
}

export async function openLocalBackend(model: string, options: { tokenizerPath?: string; threads?: number; quiet?: boolean; device?: 'cpu' | 'cuda' }): Promise<InferenceBackend> {
  const source = await openModel(model, { tokenizerPath: options.tokenizerPath });
  if (!source.tokenizer) throw new InvalidTokenizerError(model, "the model carries no tokenizer; pass --tokenizer");
  const tokenizer = createTokenizer(source.tokenizer);
  const local = await loadLocalModel(source, { threads: options.threads, quiet: options.quiet, executionProvider: options.device });
  return {
    tokenizer,
    openSession: async (maxLength) => local.openSession(maxLength),
    close: async () => {
      await local.dispose();
      source.close();
    },
  };
}
