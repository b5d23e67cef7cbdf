/**
 * `corolla generate`: streams only the generated text to stdout; logs, progress and --stats go to stderr.
 * Runs the whole model locally, or through a swarm with --swarm.
 */
import { defaultLogger } from '@libp2p/logger';
import { shortPeer } from '../client/errors.js';
import { RemoteModel } from '../client/remote-model.js';
import { DEFAULT_MAX_TOKENS, DEFAULT_SPECULATIVE_TOKENS } from '../inference/defaults.js';
import { generateFrom } from '../inference/generate.js';
import type { LanguageModel } from '../inference/language-model.js';
import { LocalModel } from '../inference/local-model.js';
import { DEFAULT_MODEL_PATH } from '../model/default-model.js';
import { loadPsk } from '../swarm/psk.js';
import { hubOptionsFromEnv } from './env.js';
import { terminalProgress } from './progress.js';
import { UsageError } from './errors.js';
import { deviceOption, kvCacheOption, numberOption, parse, samplingFlags, samplingFrom, samplingUsage } from './options.js';

const usage = `usage: corolla generate [--model <path|hf-repo>] [options]

  --model M              GGUF file, llama2.c .bin, Hugging Face directory, or Hub repo id
                         (default: the embedded stories260K model)
  --tokenizer PATH       tokenizer for llama2.c checkpoints (default: tokenizer.bin beside the model)
  --prompt TEXT          prompt (default: start from BOS)
  --max-tokens N         tokens to generate (default ${DEFAULT_MAX_TOKENS})
  --threads N            onnxruntime threads (default 1)
  --device cpu|cuda      onnxruntime execution provider (default cpu; cuda needs a CUDA build of onnxruntime-node)
  --kv-cache f32|f16     KV cache element type (default f32, exact; f16 halves its memory and speeds up long contexts)
  --stats                print one JSON line of timings to stderr
  --speculative ngram    speculative decoding with prompt lookup (greedy sampling only: --temperature 0);
                         the output is that of plain decoding, in fewer steps where text repeats
  --speculative-k N      tokens proposed per step (default ${DEFAULT_SPECULATIVE_TOKENS})
  --swarm                run through a swarm instead of locally (needs --bootstrap)
  --bootstrap ADDRS      comma-separated multiaddrs of swarm peers
  --psk FILE             swarm key of a private swarm (with --swarm)
${samplingUsage}`;

/** The flags of every command that runs a model (generate, chat). */
export const modelFlags = {
  model: { type: 'string' },
  tokenizer: { type: 'string' },
  'max-tokens': { type: 'string' },
  threads: { type: 'string' },
  device: { type: 'string' },
  'kv-cache': { type: 'string' },
  swarm: { type: 'boolean' },
  bootstrap: { type: 'string' },
  psk: { type: 'string' },
  ...samplingFlags,
} as const;

export const generateFlags = {
  ...modelFlags,
  prompt: { type: 'string' },
  stats: { type: 'boolean' },
  speculative: { type: 'string' },
  'speculative-k': { type: 'string' },
} as const;

export async function run(argv: string[]): Promise<void> {
  const values = parse(argv, generateFlags, usage);
  const maxTokens = numberOption(values['max-tokens'], 'max-tokens', { integer: true, min: 0 }) ?? DEFAULT_MAX_TOKENS;
  const sampling = samplingFrom(values);
  const speculativeK = numberOption(values['speculative-k'], 'speculative-k', { integer: true, min: 1 });
  if (values.speculative !== undefined && values.speculative !== 'ngram') throw new UsageError(`--speculative takes ngram, got ${values.speculative}`);
  if (speculativeK !== undefined && values.speculative === undefined) throw new UsageError('--speculative-k needs --speculative');
  if (values.speculative !== undefined && sampling.temperature !== 0 && sampling.topK !== 1) {
    process.stderr.write('note: --speculative speeds up greedy sampling only (--temperature 0); decoding one token at a time\n');
  }
  const speculative = values.speculative === 'ngram' ? { proposer: 'ngram' as const, ...(speculativeK !== undefined ? { k: speculativeK } : {}) } : undefined;

  const loadStarted = performance.now();
  const model = await openCliModel(values);
  const loadMs = performance.now() - loadStarted;

  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    if (values.prompt === undefined && model.tokenizer.special.bos === undefined) throw new UsageError('this model has no BOS token; give a --prompt');
    const stream = generateFrom(model, values.prompt ?? '', { ...sampling, maxTokens, signal: abort.signal, ...(speculative ? { speculative } : {}) });
    for await (const event of stream) if (event.text) process.stdout.write(event.text);
    if (process.stdout.isTTY) process.stdout.write('\n'); // a pipe gets exactly the generated text
    if (values.stats) {
      const s = stream.stats;
      process.stderr.write(
        JSON.stringify({
          load_ms: Math.round(loadMs),
          prompt_tokens: s.promptTokens,
          generated_tokens: s.generatedTokens,
          prefill_tok_s: round(s.promptTokens / (s.prefillMs / 1000)),
          decode_tok_s: s.decodeSteps > 0 ? round((s.decodeSteps + (s.speculation?.accepted ?? 0)) / (s.decodeMs / 1000)) : null,
          finish_reason: s.finishReason,
          seed: sampling.seed ?? null,
          ...(s.speculation ? { speculation: s.speculation } : {}),
          ...(s.servers ? { servers: s.servers } : {}),
        }) + '\n',
      );
    }
  } finally {
    process.off('SIGINT', onSignal);
    await model.close();
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

interface ModelValues {
  readonly model?: string;
  readonly tokenizer?: string;
  readonly threads?: string;
  readonly device?: string;
  readonly 'kv-cache'?: string;
  readonly swarm?: boolean;
  readonly bootstrap?: string;
  readonly psk?: string;
}

/** The model a command runs on: local, or a swarm (with its progress, route, failures and recoveries on stderr). */
export async function openCliModel(values: ModelValues): Promise<LanguageModel> {
  const threads = numberOption(values.threads, 'threads', { integer: true, min: 1 }) ?? 1;
  const device = deviceOption(values.device);
  const kvCacheType = kvCacheOption(values['kv-cache']);
  const modelPath = values.model ?? DEFAULT_MODEL_PATH;
  if (!values.swarm) {
    if (values.psk !== undefined) throw new UsageError('--psk is for --swarm');
    return LocalModel.open(modelPath, { tokenizerPath: values.tokenizer, threads, executionProvider: device, kvCacheType, hub: hubOptionsFromEnv(), onProgress: terminalProgress() });
  }
  if (kvCacheType !== undefined) throw new UsageError('--kv-cache is for a local model: in a swarm, each server keeps its own cache (corolla serve --kv-cache)');
  if (!values.bootstrap) throw new UsageError('--swarm needs --bootstrap ADDR[,ADDR…]');
  const psk = values.psk !== undefined ? await loadPsk(values.psk) : undefined;
  const bootstrap = values.bootstrap.split(',').map((address) => address.trim()).filter(Boolean);
  const model = new RemoteModel({ model: modelPath, tokenizerPath: values.tokenizer, bootstrap, threads, psk, hub: hubOptionsFromEnv(), onProgress: terminalProgress() }, { logger: defaultLogger() });
  const say = (line: string) => process.stderr.write(`[swarm] ${line}\n`);
  model.addEventListener('waiting', ({ detail: w }) => say(`waiting for servers of ${w.modelId}: ${w.servers} found, ${w.missing} (${Math.round(w.elapsedMs / 1000)} s)`));
  model.addEventListener('route', ({ detail: hops }) => say(`session route: ${hops.map((h) => `[${h.start},${h.end})@${h.peerId}`).join(' → ')}`));
  model.addEventListener('failure', ({ detail: f }) => say(`hop failed, banned ${shortPeer(f.peerId)} for ${f.banMs} ms: ${f.error.message}`));
  model.addEventListener('recovery', ({ detail: r }) =>
    say(`recovered blocks [${r.start}, ${r.end}) on ${r.replacements.map((h) => `[${h.start},${h.end}) ${shortPeer(h.peerId)}`).join(', ')} in ${r.ms.toFixed(1)} ms (${r.replayedSteps} steps replayed)`),
  );
  await model.start();
  return model;
}
