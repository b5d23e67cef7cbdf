/**
 * Gateway benchmark on loopback, in one run, on one swarm (a bootstrap peer and two `corolla serve` processes
 * splitting the model) with a `corolla gateway` process in front of it:
 * - time to first token and decode tok/s of a greedy generation through the gateway (OpenAI streaming over HTTP,
 *   SSE parsed here) against the client library (RemoteModel in this process) on the same servers, alternating runs,
 *   medians;
 * - aggregate tok/s of 32 concurrent streams through the gateway.
 * Writes bench/results/gateway.json; the last stdout line is JSON with ttft_overhead_ms and decode_ratio.
 *
 *   npm run bench:gateway [-- --model M --tokens 512 --runs 11 --streams 32 --database-url postgres://…]
 */
import '../src/util/polyfills.js';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { RemoteModel } from '../src/client/remote-model.js';
import { startCorolla, type CorollaProcess } from '../src/cli/processes.js';
import { DEFAULT_MODEL_PATH } from '../src/model/default-model.js';
import { openModel } from '../src/model/load.js';

const { values } = parseArgs({ options: { model: { type: 'string', default: DEFAULT_MODEL_PATH }, tokens: { type: 'string', default: '512' }, runs: { type: 'string', default: '11' }, streams: { type: 'string', default: '32' }, 'database-url': { type: 'string' } } });
const model = values.model!;
const tokens = Number(values.tokens);
const runs = Number(values.runs);
const streams = Number(values.streams);
const PROMPT = 'Once upon a time, there was a little girl named Lily. She loved to play outside';
const root = path.resolve(import.meta.dirname, '..');
const log = (line: string) => process.stderr.write(line + '\n');
const children: CorollaProcess[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Run {
  ttftMs: number;
  decodeTokS: number;
  text: string;
  /** Generated tokens (the usage chunk's count through the gateway). */
  generated: number;
}

/** Keep-alive, so every request reuses a warm connection (as any HTTP client library would). */
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/**
 * One streaming OpenAI completion through the gateway, read with node:http (the leanest client, so the figures are
 * the gateway's, not a client library's); TTFT = first text chunk after the request was sent.
 */
function throughGateway(url: string, name: string, maxTokens = tokens): Promise<Run> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: name, prompt: PROMPT, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const started = performance.now();
    let first: number | undefined;
    let last = started;
    let chunks = 0;
    let text = '';
    let generated = 0;
    let buffer = '';
    const request = http.request(`${url}/v1/completions`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (response) => {
      if (response.statusCode !== 200) return reject(new Error(`gateway answered ${response.statusCode}`));
      response.setEncoding('utf8');
      response.on('data', (data: string) => {
        buffer += data;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, end).replace(/^data: /, '');
          buffer = buffer.slice(end + 2);
          if (event === '[DONE]') continue;
          const json = JSON.parse(event) as { choices: { text: string }[]; usage?: { completion_tokens: number } };
          if (json.usage) generated = json.usage.completion_tokens;
          const piece = json.choices[0]?.text;
          if (piece) {
            const now = performance.now();
            first ??= now;
            last = now;
            chunks++;
            text += piece;
          }
        }
      });
      response.on('end', () => resolve({ ttftMs: first! - started, decodeTokS: ((chunks - 1) / (last - first!)) * 1000, text, generated }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** The same generation through the client library: TTFT = first token event; decode over the following events. */
async function throughLibrary(remote: RemoteModel): Promise<Run> {
  const started = performance.now();
  let first: number | undefined;
  let last = started;
  let chunks = 0;
  let text = '';
  for await (const event of remote.generate(PROMPT, { maxTokens: tokens, temperature: 0 })) {
    if (!event.text) continue;
    const now = performance.now();
    first ??= now;
    last = now;
    chunks++;
    text += event.text;
  }
  return { ttftMs: first! - started, decodeTokS: ((chunks - 1) / (last - first!)) * 1000, text, generated: chunks };
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corolla-bench-gateway-'));
const results: Record<string, unknown> = { model: path.relative(root, model), tokens, runs, streams, ledger: values['database-url'] ? 'postgresql' : 'pglite' };
try {
  const source = await openModel(model);
  const numBlocks = source.config.numLayers;
  source.close();
  const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
  children.push(dht);
  const bootstrap = dht.readyLine.trim();
  const half = Math.ceil(numBlocks / 2);
  for (const blocks of [`0:${half}`, `${half}:${numBlocks}`]) {
    children.push(await startCorolla(`serve ${blocks}`, ['serve', '--model', model, '--blocks', blocks, '--bootstrap', bootstrap, '--threads', '1'], { ready: /^ready /, timeoutMs: 180_000 }));
  }
  const gateway = await startCorolla('gateway', ['gateway', '--bootstrap', bootstrap, '--model', model, '--port', '0', '--data-dir', dataDir, '--threads', '1', ...(values['database-url'] ? ['--database-url', values['database-url']] : [])], { ready: /^ready /, timeoutMs: 120_000 });
  children.push(gateway);
  const url = gateway.readyLine.trim().slice('ready '.length);
  const name = path.basename(model).replace(/\.(gguf|bin)$/i, '');
  const remote = await RemoteModel.open({ model, bootstrap: [bootstrap], threads: 1 });
  for (;;) {
    if ((await fetch(`${url}/health`).catch(() => undefined))?.ok) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }

  // warm both paths, then alternate
  await throughGateway(url, name);
  await throughLibrary(remote);
  const gatewayRuns: Run[] = [];
  const libraryRuns: Run[] = [];
  for (let i = 0; i < runs; i++) {
    gatewayRuns.push(await throughGateway(url, name));
    libraryRuns.push(await throughLibrary(remote));
    log(`run ${i + 1}/${runs}: gateway ttft ${gatewayRuns.at(-1)!.ttftMs.toFixed(1)} ms, ${gatewayRuns.at(-1)!.decodeTokS.toFixed(0)} tok/s · library ttft ${libraryRuns.at(-1)!.ttftMs.toFixed(1)} ms, ${libraryRuns.at(-1)!.decodeTokS.toFixed(0)} tok/s`);
  }
  if (gatewayRuns.some((r) => r.text !== libraryRuns[0]!.text)) throw new Error('the gateway generated other text than the library');
  const ttft = { gateway: median(gatewayRuns.map((r) => r.ttftMs)), library: median(libraryRuns.map((r) => r.ttftMs)) };
  const decode = { gateway: median(gatewayRuns.map((r) => r.decodeTokS)), library: median(libraryRuns.map((r) => r.decodeTokS)) };
  Object.assign(results, { ttft_ms: ttft, decode_tok_s: decode, ttft_overhead_ms: ttft.gateway - ttft.library, decode_ratio: decode.gateway / decode.library });
  await remote.close();

  // concurrent streams through the gateway
  const t = performance.now();
  const all = await Promise.all(Array.from({ length: streams }, () => throughGateway(url, name, 64)));
  const seconds = (performance.now() - t) / 1000;
  const generated = all.reduce((n, r) => n + r.generated, 0);
  if (all.some((r) => r.text !== all[0]!.text)) throw new Error('concurrent streams disagree');
  Object.assign(results, { concurrent_streams: streams, concurrent_tok_s: generated / seconds, concurrent_seconds: seconds });
} finally {
  await Promise.all(children.reverse().map((c) => c.stop()));
  fs.rmSync(dataDir, { recursive: true, force: true });
}
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
fs.writeFileSync(path.join(root, 'bench/results/gateway.json'), JSON.stringify(results, null, 2) + '\n');
console.log(JSON.stringify(results));
