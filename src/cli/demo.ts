/**
 * `corolla demo`: one command that brings up a local swarm (a bootstrap peer and three block servers splitting the
 * model) with a gateway in front of it, streams a generation through the gateway's OpenAI-compatible API, and keeps
 * everything running so the dashboard and chat page can be opened (--once stops after the generation). Ctrl-C stops
 * everything cleanly.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_MODEL_PATH as DEFAULT_MODEL } from '../model/default-model.js';
import { openModel } from '../model/load.js';
import { DEFAULT_DEMO_EPOCH_SECONDS, gatewayChainOptions, serverChainOptions, settleDemoEpochs, startDemoChain, startDemoOracle, type DemoChain } from './demo-chain.js';
import { ChildProcessError, UsageError } from './errors.js';
import { numberOption, parse, samplingFlags, samplingFrom } from './options.js';
import { evenSpans, startCorolla, type CorollaProcess } from './processes.js';

const DEFAULT_SERVERS = 3;
const MAX_SERVERS = 16;
const DEFAULT_MAX_TOKENS = 200;
const DEFAULT_PROMPT = 'Once upon a time';
const DEFAULT_PORT = 8100;
const COVERAGE_TIMEOUT_MS = 60_000;

const usage = `usage: corolla demo [--model M] [--servers N] [--port P] [--prompt TEXT] [--max-tokens N] [--once]
                    [--chain [--epoch-seconds S]]

Starts a bootstrap DHT peer, N block servers (default ${DEFAULT_SERVERS}, at most ${MAX_SERVERS}) that split the
model's blocks, and a gateway on --port (default ${DEFAULT_PORT}; 0 picks a free one) with its ledger in
~/.corolla/demo. Prints the dashboard, chat and OpenAI URLs, streams a generation through the gateway (--prompt,
default "${DEFAULT_PROMPT}"; --max-tokens, default ${DEFAULT_MAX_TOKENS}), then keeps running until Ctrl-C
(--once: stop after the generation). Default model: ${DEFAULT_MODEL}

--chain also starts a local anvil chain (from the @foundry-rs/anvil package), deploys the AgentRegistry and the
RewardPool (epochs of --epoch-seconds, default ${DEFAULT_DEMO_EPOCH_SECONDS}), gives each server one of anvil's public development
keys and registers it, starts an oracle, has the gateway sign receipts, waits for the epoch to close, claims each
server's reward and prints it beside the tokens the server served.`;

export async function run(argv: string[]): Promise<void> {
  const values = parse(
    argv,
    { model: { type: 'string' }, servers: { type: 'string' }, port: { type: 'string' }, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, once: { type: 'boolean' }, chain: { type: 'boolean' }, 'epoch-seconds': { type: 'string' }, 'data-dir': { type: 'string' }, ...samplingFlags },
    usage,
  );
  const model = values.model ?? DEFAULT_MODEL;
  if (!fs.existsSync(model)) throw new UsageError(`model not found: ${model}\n\n${usage}`);
  const servers = numberOption(values.servers, 'servers', { integer: true, min: 1, max: MAX_SERVERS }) ?? DEFAULT_SERVERS;
  const port = numberOption(values.port, 'port', { integer: true, min: 0, max: 65_535 }) ?? DEFAULT_PORT;
  const maxTokens = numberOption(values['max-tokens'], 'max-tokens', { integer: true, min: 1 }) ?? DEFAULT_MAX_TOKENS;
  const prompt = values.prompt ?? DEFAULT_PROMPT;
  const sampling = samplingFrom(values);
  const dataDir = values['data-dir'] ?? path.join(os.homedir(), '.corolla', 'demo');
  const epochSeconds = numberOption(values['epoch-seconds'], 'epoch-seconds', { integer: true, min: 5 }) ?? DEFAULT_DEMO_EPOCH_SECONDS;
  if (values['epoch-seconds'] !== undefined && !values.chain) throw new UsageError('--epoch-seconds needs --chain');
  const say = (line: string) => process.stderr.write(line + '\n');

  say(`model: ${model === DEFAULT_MODEL ? `the embedded ${path.basename(model)} (no download needed)` : model}`);
  const source = await openModel(model);
  const numBlocks = source.config.numLayers;
  source.close();
  if (servers > numBlocks) throw new UsageError(`--servers ${servers} exceeds the model's ${numBlocks} blocks`);

  const children: CorollaProcess[] = [];
  let chain: DemoChain | undefined;
  let oracleDir: string | undefined;
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    say('\nstopping the gateway and the swarm…');
    // the gateway first, so it records its sessions before the servers go
    for (const c of [...children].reverse().filter((c) => c.name === 'gateway')) await c.stop();
    await Promise.all(children.map((c) => c.stop()));
    chain?.stop();
    if (oracleDir) fs.rmSync(oracleDir, { recursive: true, force: true });
  };
  const onSignal = () => void stopAll().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say('starting a bootstrap peer…');
    const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
    children.push(dht);
    const bootstrap = dht.readyLine.trim();
    say(`bootstrap: ${bootstrap}`);
    let oracleUrl: string | undefined;
    if (values.chain) {
      say('starting a local chain (anvil) and deploying the contracts…');
      chain = await startDemoChain(servers, epochSeconds, say);
      say('starting the oracle…');
      // a fresh store per run: the chain is new each time
      oracleDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corolla-demo-oracle-'));
      const oracle = await startDemoOracle(chain, oracleDir);
      children.push(oracle);
      oracleUrl = oracle.url;
      say(`oracle: ${oracleUrl}`);
    }
    const spans = evenSpans(numBlocks, servers);
    say(`starting ${servers} servers for blocks ${spans.map((s) => `${s.start}:${s.end}`).join(', ')}…`);
    const started = await Promise.all(
      spans.map((s, i) => {
        const onChain = chain ? serverChainOptions(chain, i) : { args: [], env: {} };
        return startCorolla(`server-${i}`, ['serve', '--model', model, '--blocks', `${s.start}:${s.end}`, '--bootstrap', bootstrap, '--public-name', `demo-${i}`, '--location', 'localhost', ...onChain.args], { ready: /^ready /, env: onChain.env });
      }),
    );
    children.push(...started);
    for (const [i, s] of started.entries()) say(`  ${s.readyLine}${chain ? `  (registered as ${chain.server(i).address})` : ''}`);

    say(`starting the gateway (ledger: embedded PGlite in ${dataDir})…`);
    const receipts = chain && oracleUrl ? gatewayChainOptions(chain, oracleUrl) : { args: [], env: {} };
    const gateway = await startCorolla('gateway', ['gateway', '--bootstrap', bootstrap, '--model', model, '--port', String(port), '--data-dir', dataDir, ...receipts.args], {
      ready: /^ready /,
      timeoutMs: 120_000,
      env: receipts.env,
    });
    children.push(gateway);
    const url = gateway.readyLine.trim().slice('ready '.length);
    await waitForHealthy(url, COVERAGE_TIMEOUT_MS);
    say(`\n  dashboard        ${url}/dashboard`);
    say(`  chat             ${url}/chat`);
    say(`  OpenAI base URL  ${url}/v1     (e.g. new OpenAI({ baseURL: '${url}/v1', apiKey: 'none' }))`);
    say(`  Far Mesh API     ${url}/inference/generate · ${url}/mesh/status · metrics ${url}/metrics`);

    const trafficStarted = Date.now();
    say(`\ngenerating through the gateway: "${prompt}"\n`);
    process.stdout.write(prompt);
    await streamCompletion(url, {
      model: path.basename(model).replace(/\.(gguf|bin)$/i, ''),
      prompt,
      max_tokens: maxTokens,
      temperature: sampling.temperature,
      top_p: sampling.topP,
      ...(sampling.topK !== undefined ? { top_k: sampling.topK } : {}),
      ...(sampling.minP !== undefined ? { min_p: sampling.minP } : {}),
      ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
      ...(sampling.stop ? { stop: sampling.stop.slice(0, 4) } : {}),
      stream: true,
      stream_options: { include_usage: true },
    });
    process.stdout.write('\n');
    if (chain && oracleUrl) {
      say('\nthe gateway signed a receipt per server for that request and sends them to the oracle.');
      await settleDemoEpochs(chain, oracleUrl, spans, trafficStarted, say);
    }
    if (!values.once) {
      say(`\nthe swarm and the gateway keep running: open ${url}/dashboard; press Ctrl-C to stop.`);
      await new Promise(() => {});
    }
  } finally {
    await stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Polls /health until the gateway can serve the model (its servers are found in the DHT). */
async function waitForHealthy(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const response = await fetch(`${url}/health`);
      if (response.ok) return;
      last = JSON.stringify(await response.json());
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new ChildProcessError(`the gateway did not find servers for every block within ${timeoutMs / 1000} s: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Streams an OpenAI completion to stdout and prints its usage to stderr. */
async function streamCompletion(url: string, body: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok || !response.body) throw new ChildProcessError(`the gateway answered ${response.status}: ${await response.text()}`);
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('');
      if (!data || data === '[DONE]') continue;
      const json = JSON.parse(data) as { choices?: { text?: string }[]; usage?: { prompt_tokens: number; completion_tokens: number }; error?: { message: string } };
      if (json.error) throw new ChildProcessError(`the generation failed: ${json.error.message}`);
      if (json.choices?.[0]?.text) process.stdout.write(json.choices[0].text);
      if (json.usage) process.stderr.write(`\n\n(${json.usage.prompt_tokens} prompt + ${json.usage.completion_tokens} generated tokens, recorded in the ledger)`);
    }
  }
}
