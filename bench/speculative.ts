/**
 * Speculative decoding over a swarm, in one run: greedy decode tok/s with and without prompt-lookup speculation,
 * through 1 server holding every block and 3 servers with a span each, with no added latency and with an added
 * delay on every hop (each step reply of each hop arrives --delay-ms later, simulated on the client's block streams:
 * a network where every hop costs a round trip). Servers are real `corolla serve` processes on TCP loopback; the client
 * is the library (RemoteModel) in this process. Each configuration runs --rounds times, alternating with and
 * without speculation; medians are reported. Also checks that both give the same tokens.
 *
 *   npm run bench:speculative [-- --model PATH --tokens 128 --k 4 --delay-ms 20 --rounds 3]
 *
 * The default model is the embedded stories260K, whose stories repeat names and phrases (where n-gram lookup helps).
 * Writes bench/results/speculative.json; the last stdout line is a JSON summary.
 */
import '../src/util/polyfills.js';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Stream } from '@libp2p/interface';
import { RemoteModel } from '../src/client/remote-model.js';
import { startCorolla, type CorollaProcess } from '../src/cli/processes.js';
import type { GenerationStats } from '../src/inference/generate.js';
import { DEFAULT_MODEL_PATH } from '../src/model/default-model.js';
import { openModel } from '../src/model/load.js';
import { createSwarmNode, type SwarmNode } from '../src/swarm/node.js';
import { BLOCK_PROTOCOL } from '../src/wire/protocols.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    tokens: { type: 'string', default: '128' },
    k: { type: 'string', default: '4' },
    'delay-ms': { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    prompt: { type: 'string', default: 'Once upon a time, there was a little girl named Lily. Lily loved to play with her ball. One day, Lily' },
  },
});
const model = values.model ?? DEFAULT_MODEL_PATH;
const tokens = Number(values.tokens);
const k = Number(values.k);
const delayMs = Number(values['delay-ms']);
const rounds = Number(values.rounds);
const log = (line: string) => process.stderr.write(line + '\n');
const children: CorollaProcess[] = [];

/** The stream with every incoming message held back `ms`: each reply of this hop arrives that much later. */
function delayedStream(stream: Stream, ms: number): Stream {
  const wrapped = new Map<unknown, (event: Event) => void>();
  return new Proxy(stream, {
    get(target, key) {
      if (key === 'addEventListener') {
        return (type: string, listener: (event: Event) => void, options?: unknown) => {
          if (type !== 'message') return target.addEventListener(type as 'message', listener, options as boolean);
          const late = (event: Event) => void setTimeout(() => listener(event), ms);
          wrapped.set(listener, late);
          target.addEventListener('message', late);
        };
      }
      if (key === 'removeEventListener') {
        return (type: string, listener: (event: Event) => void, options?: unknown) =>
          target.removeEventListener(type as 'message', (type === 'message' ? wrapped.get(listener) : undefined) ?? listener, options as boolean);
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A client node whose block-protocol streams deliver every reply `ms` late (the DHT is left alone; no lanes). */
function withHopDelay(node: SwarmNode, ms: number): SwarmNode {
  if (ms <= 0) return node;
  const libp2p = new Proxy(node.libp2p, {
    get(target, key) {
      if (key === 'dialProtocol') {
        return async (...args: Parameters<typeof target.dialProtocol>) => {
          const stream = await target.dialProtocol(...args);
          return args[1] === BLOCK_PROTOCOL ? delayedStream(stream, ms) : stream;
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  // the delay lives on libp2p streams: no direct lanes, which would go around it
  return Object.assign(Object.create(node) as SwarmNode, { libp2p, lanes: undefined });
}

async function startSwarm(spans: string[]): Promise<string> {
  const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
  children.push(dht);
  const bootstrap = dht.readyLine.trim();
  for (const blocks of spans) {
    children.push(await startCorolla(`serve ${blocks}`, ['serve', '--model', model, '--blocks', blocks, '--bootstrap', bootstrap, '--threads', values.threads!, '--rebalance-interval', '0'], { ready: /^ready /, timeoutMs: 180_000 }));
  }
  return bootstrap;
}

interface Run {
  readonly ids: number[];
  readonly stats: GenerationStats;
  readonly tokS: number;
}

async function generateOnce(remote: RemoteModel, speculative: boolean): Promise<Run> {
  const ids: number[] = [];
  const stream = remote.generate(values.prompt!, { temperature: 0, maxTokens: tokens, stopTokens: [], ...(speculative ? { speculative: { proposer: 'ngram', k } } : {}) });
  for await (const event of stream) if (event.token >= 0) ids.push(event.token);
  const s = stream.stats;
  // decode rate: every token after the first (which prefill gives) over the decode time
  return { ids, stats: s, tokS: (s.generatedTokens - 1) / (s.decodeMs / 1000) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round1 = (x: number) => Math.round(x * 10) / 10;

async function measure(hops: number, bootstrap: string, delay: number) {
  const base = await createSwarmNode({ bootstrap: [bootstrap] });
  const remote = await RemoteModel.open({ model, bootstrap: [bootstrap], coverageTimeoutMs: 60_000 }, { node: withHopDelay(base, delay) });
  try {
    await generateOnce(remote, false); // warm-up: routes measured, graphs run
    const plain: Run[] = [];
    const spec: Run[] = [];
    for (let r = 0; r < rounds; r++) {
      plain.push(await generateOnce(remote, false));
      spec.push(await generateOnce(remote, true));
    }
    const same = spec.every((run) => JSON.stringify(run.ids) === JSON.stringify(plain[0]!.ids));
    const s = spec.at(-1)!.stats.speculation!;
    const row = {
      hops,
      delay_ms: delay,
      tokens,
      k,
      plain_tok_s: round1(median(plain.map((run) => run.tokS))),
      speculative_tok_s: round1(median(spec.map((run) => run.tokS))),
      speedup: Math.round((median(spec.map((run) => run.tokS)) / median(plain.map((run) => run.tokS))) * 100) / 100,
      acceptance: Math.round((s.accepted / Math.max(1, s.proposed)) * 1000) / 1000,
      tokens_per_step: round1((spec.at(-1)!.stats.generatedTokens - 1) / Math.max(1, spec.at(-1)!.stats.decodeSteps)),
      same_tokens: same,
    };
    console.log(JSON.stringify(row));
    return row;
  } finally {
    await remote.close();
    await base.stop();
  }
}

async function main() {
  const numLayers = await openModel(model).then((source) => {
    const n = source.config.numLayers;
    source.close();
    return n;
  });
  const third = Math.max(1, Math.floor(numLayers / 3));
  const layouts: [number, string[]][] = [
    [1, ['all']],
    [3, [`0:${third}`, `${third}:${2 * third}`, `${2 * third}:${numLayers}`]],
  ];
  const rows = [];
  for (const [hops, spans] of layouts) {
    log(`starting ${hops} server(s): ${spans.join(' ')}`);
    const bootstrap = await startSwarm(spans);
    try {
      for (const delay of [0, delayMs]) rows.push(await measure(hops, bootstrap, delay));
    } finally {
      await Promise.all(children.splice(0).map((child) => child.stop()));
    }
  }
  const summary = {
    benchmark: 'speculative',
    model: path.basename(model),
    note: 'greedy; prompt-lookup proposals; tok/s = tokens after the first / decode time; medians of rounds',
    rows,
    all_same_tokens: rows.every((row) => row.same_tokens),
  };
  fs.mkdirSync(path.join(import.meta.dirname, 'results'), { recursive: true });
  fs.writeFileSync(path.join(import.meta.dirname, 'results/speculative.json'), JSON.stringify(summary, null, 2) + '\n');
  console.log(JSON.stringify(summary));
}

main().catch(async (error) => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
  log(String(error?.stack ?? error));
  process.exitCode = 1;
});
