/**
 * `corolla demo`: one command that brings up a local swarm (a bootstrap peer and three block servers splitting the
 * model) and streams a generation through it. Ctrl-C stops everything cleanly.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { DEFAULT_MODEL_PATH as DEFAULT_MODEL } from '../model/default-model.js';
import { openModel } from '../model/load.js';
import { ChildProcessError, UsageError } from './errors.js';
import { numberOption, parse, samplingFlags } from './options.js';
import { COROLLA_BIN, evenSpans, startCorolla, type CorollaProcess } from './processes.js';

const DEFAULT_SERVERS = 3;
const MAX_SERVERS = 16;
const DEFAULT_MAX_TOKENS = 200;
const DEFAULT_PROMPT = 'Once upon a time';

const usage = `usage: corolla demo [--model M] [--servers N] [--prompt TEXT] [--max-tokens N] [--keep-running]

Starts a bootstrap DHT peer and N block servers (default ${DEFAULT_SERVERS}, at most ${MAX_SERVERS}) that split the
model's blocks, then streams a generation through the swarm: --prompt (default "${DEFAULT_PROMPT}"), --max-tokens
(default ${DEFAULT_MAX_TOKENS}). Default model: ${DEFAULT_MODEL}`;

export async function run(argv: string[]): Promise<void> {
  const values = parse(
    argv,
    { model: { type: 'string' }, servers: { type: 'string' }, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, 'keep-running': { type: 'boolean' }, ...samplingFlags },
    usage,
  );
  const model = values.model ?? DEFAULT_MODEL;
  if (!fs.existsSync(model)) throw new UsageError(`model not found: ${model}\n\n${usage}`);
  const servers = numberOption(values.servers, 'servers', { integer: true, min: 1, max: MAX_SERVERS }) ?? DEFAULT_SERVERS;
  const maxTokens = numberOption(values['max-tokens'], 'max-tokens', { integer: true, min: 1 }) ?? DEFAULT_MAX_TOKENS;
  const prompt = values.prompt ?? DEFAULT_PROMPT;

  const source = await openModel(model);
  const numBlocks = source.config.numLayers;
  source.close();
  if (servers > numBlocks) throw new UsageError(`--servers ${servers} exceeds the model's ${numBlocks} blocks`);

  const children: CorollaProcess[] = [];
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('\nstopping the swarm…\n');
    await Promise.all(children.map((c) => c.stop()));
  };
  const onSignal = () => void stopAll().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    process.stderr.write('starting a bootstrap peer…\n');
    const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
    children.push(dht);
    const bootstrap = dht.readyLine.trim();
    process.stderr.write(`bootstrap: ${bootstrap}\n`);
    const spans = evenSpans(numBlocks, servers);
    process.stderr.write(`starting ${servers} servers for blocks ${spans.map((s) => `${s.start}:${s.end}`).join(', ')}…\n`);
    const started = await Promise.all(
      spans.map((s, i) =>
        startCorolla(`server-${i}`, ['serve', '--model', model, '--blocks', `${s.start}:${s.end}`, '--bootstrap', bootstrap, '--public-name', `demo-${i}`], { ready: /^ready / }),
      ),
    );
    children.push(...started);
    for (const s of started) process.stderr.write(`  ${s.readyLine}\n`);

    process.stderr.write(`\ngenerating through the swarm: "${prompt}"\n\n`);
    const args = ['generate', '--swarm', '--bootstrap', bootstrap, '--model', model, '--prompt', prompt, '--max-tokens', String(maxTokens), '--stats'];
    for (const [flag, value] of Object.entries(values)) {
      if (flag in samplingFlags && value !== undefined) for (const v of ([] as unknown[]).concat(value)) args.push(`--${flag}`, String(v));
    }
    // The client streams straight to our stdout, token by token.
    const client = spawn(process.execPath, [COROLLA_BIN, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    if (code !== 0 && !stopping) throw new ChildProcessError(`the swarm client exited with code ${code}`);
    process.stdout.write('\n');
    if (values['keep-running']) {
      process.stderr.write('\nthe swarm keeps running; press Ctrl-C to stop it.\n');
      await new Promise(() => {});
    }
  } finally {
    await stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
