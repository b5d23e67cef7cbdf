/**
 * Soak test of a loopback swarm (not part of `npm test`): real `corolla dht` and `corolla serve` processes on the
 * embedded stories260K model, for `--minutes N` (default 10), with
 * - honest clients (RemoteModel, greedy) whose every output is compared with the local engine's;
 * - a hostile peer that sends the servers malformed frames, oversized length prefixes, steps for unknown sessions and
 *   floods of sessions, over raw block-protocol streams;
 * - random SIGKILLs of servers, each restarted a few seconds later.
 * It reports honest requests completed, outputs identical to the local engine's, the highest RSS of any server
 * process (VmHWM from /proc/<pid>/status) and the longest event-loop stall the servers logged (--stats-interval).
 * The last stdout line is JSON.
 *
 *   npm run soak [-- --minutes 2 --clients 2 --kill-every 20 --hostile all|none|0..3 --trace-stalls]
 */
import '../src/util/polyfills.js';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { byteStream } from '@libp2p/utils';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { RemoteModel } from '../src/client/remote-model.js';
import { startCorolla, type CorollaProcess } from '../src/cli/processes.js';
import { generate } from '../src/inference/generate.js';
import { loadLocalModel } from '../src/inference/local-model.js';
import { DEFAULT_MODEL_PATH } from '../src/model/default-model.js';
import { openModel } from '../src/model/load.js';
import { createTokenizer } from '../src/model/tokenizer/index.js';
import { modelIdOf } from '../src/swarm/model-id.js';
import { createSwarmNode } from '../src/swarm/node.js';
import { createRegistry } from '../src/swarm/registry/index.js';
import { encodeMessage } from '../src/wire/messages.js';
import { BLOCK_PROTOCOL } from '../src/wire/protocols.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    clients: { type: 'string', default: '2' },
    'max-tokens': { type: 'string', default: '24' },
    'kill-every': { type: 'string', default: '30' },
    'request-timeout': { type: 'string', default: '60' },
    // which hostile attacks run: 'all' (default), 'none', or one attack's index (0..3, see ATTACKS)
    hostile: { type: 'string', default: 'all' },
    // log every server stats interval whose longest event-loop stall exceeds 250 ms
    'trace-stalls': { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
const clients = Number(values.clients);
const maxTokens = Number(values['max-tokens']);
const killEveryMs = Number(values['kill-every']) * 1000;
const requestTimeoutMs = Number(values['request-timeout']) * 1000;
const model = DEFAULT_MODEL_PATH;
/** Every block is held by at least three servers, so one killed server never leaves a gap. */
const SPANS = ['0:5', '0:3', '3:5', '0:5'];
const PROMPTS = ['Once upon a time', 'The little dog', 'One day, a girl named Lily', 'Tom and his mom went to the park'];
const STATS_INTERVAL_S = 2;

const log = (line: string) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const children = new Set<CorollaProcess>();

// ---- the local engine's outputs, the reference every honest request must equal ----
const source = await openModel(model);
const modelId = await modelIdOf(source);
const tokenizer = createTokenizer(source.tokenizer!);
const reference = new Map<string, number[]>();
{
  const local = await loadLocalModel(source, { threads: 1 });
  for (const prompt of PROMPTS) {
    const ids = tokenizer.encode(prompt);
    const session = await local.openSession(ids.length + maxTokens);
    const tokens: number[] = [];
    for await (const event of generate(session, tokenizer, ids, { temperature: 0, maxTokens, stopTokens: [] })) if (event.token >= 0) tokens.push(event.token);
    reference.set(prompt, tokens);
  }
  await local.close();
}

// ---- the swarm ----
const dht = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
children.add(dht);
const bootstrap = dht.readyLine.trim();

interface Server {
  /** slot name: index and span, e.g. "3 0:5" (a restart keeps the slot) */
  readonly name: string;
  readonly blocks: string;
  proc?: CorollaProcess;
  peerId?: string;
  alive: boolean;
}
let maxStallMs = 0;
let maxStartupStallMs = 0;
const maxRssMb = new Map<string, number>();
const servers: Server[] = SPANS.map((blocks, i) => ({ name: `${i} ${blocks}`, blocks, alive: false }));

async function startServer(server: Server): Promise<void> {
  // stalls while the server loads and measures itself (before `ready`, and the interval that spans it) are startup
  let statsSinceReady = -1;
  const proc = await startCorolla(`serve ${server.blocks}`, ['serve', '--model', model, '--blocks', server.blocks, '--bootstrap', bootstrap, '--threads', '1', '--stats-interval', String(STATS_INTERVAL_S)], {
    ready: /^ready /,
    timeoutMs: 120_000,
    onStderr: (line) => {
      const match = /stats max_event_loop_delay_ms=([\d.]+)/.exec(line);
      if (!match) return;
      if (statsSinceReady >= 1) maxStallMs = Math.max(maxStallMs, Number(match[1]));
      if (values['trace-stalls'] && Number(match[1]) > 250) log(`stall ${server.name}: ${match[1]} ms (stats interval ${statsSinceReady} after ready)`);
      else maxStartupStallMs = Math.max(maxStartupStallMs, Number(match[1]));
      if (statsSinceReady >= 0) statsSinceReady++;
    },
  });
  statsSinceReady = 0;
  children.add(proc);
  void proc.exited.then(() => children.delete(proc));
  server.proc = proc;
  server.peerId = proc.readyLine.split(' ')[1];
  server.alive = true;
}

/** VmHWM (peak RSS) of each live server process, kept per server slot (a restart's peak counts for its slot). */
function sampleRss(): void {
  for (const server of servers) {
    const pid = server.proc?.child.pid;
    if (!server.alive || pid === undefined) continue;
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) maxRssMb.set(server.name, Math.max(maxRssMb.get(server.name) ?? 0, Number(match[1]) / 1024));
    } catch {
      // exited between the check and the read
    }
  }
}

await Promise.all(servers.map(startServer));
log(`swarm up: dht ${bootstrap}; servers ${servers.map((s) => `${s.blocks}=${s.peerId}`).join(', ')}`);
const deadline = Date.now() + minutes * 60_000;
const rssTimer = setInterval(sampleRss, 1000);

// ---- random SIGKILLs and restarts (never more than one server down at a time) ----
let kills = 0;
const killer = (async () => {
  while (Date.now() + killEveryMs / 2 < deadline) {
    await sleep(killEveryMs * (0.5 + Math.random()));
    if (Date.now() > deadline) break;
    const live = servers.filter((s) => s.alive);
    if (live.length < servers.length) continue;
    const victim = live[Math.floor(Math.random() * live.length)]!;
    sampleRss();
    log(`SIGKILL ${victim.blocks} (${victim.peerId})`);
    victim.alive = false;
    victim.proc?.kill();
    kills++;
    await sleep(3000);
    try {
      await startServer(victim);
      log(`restarted ${victim.blocks} as ${victim.peerId}`);
    } catch (error) {
      log(`restart of ${victim.blocks} failed: ${(error as Error).message}`);
    }
  }
})();

// ---- the hostile peer ----
const varint = (n: number): Uint8Array => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
};
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const sessionId = () => randomBytes(8).toString('hex');
const ATTACKS: Array<() => Uint8Array[]> = [
  // malformed frames: a valid length prefix around random bytes
  () => Array.from({ length: 20 }, () => {
    const junk = randomBytes(1 + Math.floor(Math.random() * 256));
    return concat(varint(junk.length), junk);
  }),
  // an oversized length prefix (1 GiB announced), then a trickle
  () => [varint(2 ** 30), randomBytes(4096)],
  // steps for sessions that do not exist
  () => Array.from({ length: 20 }, () => encodeMessage({ type: 'step', sessionId: sessionId(), stepId: 0, position: 0, tokens: 1 }, { dtype: 'f32', shape: [1, 64], data: new Float32Array(64) })),
  // a session flood: many opens asking for the longest cache, never closed
  () => Array.from({ length: 64 }, () => encodeMessage({ type: 'open', sessionId: sessionId(), maxLength: 100_000, spanStart: 0, spanEnd: 3, codec: 'f32' })),
];

const hostileStats = { streams: 0, errors: 0 };
const hostile = (async () => {
  const node = await createSwarmNode({ bootstrap: [bootstrap], dhtClientMode: true });
  const registry = await createRegistry(node, {});
  try {
    while (Date.now() < deadline && values.hostile !== 'none') {
      let targets: { peerId: string; addrs: string[] }[] = [];
      try {
        targets = (await registry.lookup(modelId)).filter((r) => r.record.state === 'online').map((r) => ({ peerId: r.record.peerId, addrs: r.record.addrs }));
      } catch {
        // no directory yet
      }
      for (const target of targets) {
        if (Date.now() > deadline) break;
        const attack = ATTACKS[values.hostile === 'all' ? Math.floor(Math.random() * ATTACKS.length) : Number(values.hostile)]!;
        hostileStats.streams++;
        try {
          const peer = peerIdFromString(target.peerId);
          await node.libp2p.peerStore.merge(peer, { multiaddrs: target.addrs.map((a) => multiaddr(a)) });
          const stream = await node.libp2p.dialProtocol(peer, BLOCK_PROTOCOL, { signal: AbortSignal.timeout(5000) });
          const bytes = byteStream(stream);
          for (const frame of attack()) await bytes.write(frame, { signal: AbortSignal.timeout(5000) });
          await sleep(200);
          stream.abort(new Error('hostile peer done'));
        } catch {
          hostileStats.errors++;
        }
      }
      await sleep(250);
    }
  } finally {
    await registry.close();
    await node.stop();
  }
})();

// ---- honest clients ----
const honest = { total: 0, completed: 0, identical: 0, failures: new Map<string, number>() };
async function honestClient(index: number): Promise<void> {
  const remote = await RemoteModel.open({ model, bootstrap: [bootstrap], threads: 1, coverageTimeoutMs: 60_000 });
  try {
    for (let i = 0; Date.now() < deadline; i++) {
      const prompt = PROMPTS[(index + i) % PROMPTS.length]!;
      honest.total++;
      try {
        const tokens: number[] = [];
        const signal = AbortSignal.timeout(requestTimeoutMs);
        for await (const event of remote.generate(prompt, { maxTokens, temperature: 0, stopTokens: [], signal })) if (event.token >= 0) tokens.push(event.token);
        if (signal.aborted) throw new Error('request timed out');
        honest.completed++;
        if (tokens.join(',') === reference.get(prompt)!.join(',')) honest.identical++;
        else log(`client ${index}: output differs for "${prompt}"`);
      } catch (error) {
        const reason = `${(error as { code?: string }).code ?? (error as Error).name}`;
        honest.failures.set(reason, (honest.failures.get(reason) ?? 0) + 1);
        log(`client ${index}: request failed: ${(error as Error).message.split('\n')[0]}`);
      }
    }
  } finally {
    await remote.close();
  }
}

const progress = setInterval(() => log(`honest ${honest.completed}/${honest.total} (identical ${honest.identical}); kills ${kills}; hostile streams ${hostileStats.streams}; max stall ${maxStallMs} ms`), 15_000);
try {
  await Promise.all([...Array.from({ length: clients }, (_, i) => honestClient(i)), killer, hostile]);
} finally {
  clearInterval(progress);
  clearInterval(rssTimer);
  sampleRss();
  await Promise.all([...children].map((child) => child.stop(3000)));
  source.close();
}

const pct = (part: number, whole: number) => (whole === 0 ? 0 : Math.round((part / whole) * 10_000) / 100);
const summary = {
  minutes,
  honest_requests: honest.total,
  honest_completed: honest.completed,
  honest_completed_pct: pct(honest.completed, honest.total),
  identical: honest.identical,
  /** of the completed requests, those whose tokens equal the local engine's */
  identical_pct: pct(honest.identical, honest.completed),
  honest_failures: Object.fromEntries(honest.failures),
  kills,
  hostile_streams: hostileStats.streams,
  max_server_rss_mb: Math.round(Math.max(0, ...maxRssMb.values()) * 10) / 10,
  server_rss_mb: Object.fromEntries([...maxRssMb].map(([blocks, mb]) => [blocks, Math.round(mb * 10) / 10])),
  /** longest event-loop stall of any server while serving (stats intervals after `ready`) */
  max_event_loop_stall_ms: maxStallMs,
  /** the same while a server loads the model and measures its throughput, before it serves */
  max_startup_stall_ms: maxStartupStallMs,
};
process.stdout.write(JSON.stringify(summary) + '\n');
// libp2p may leave handles behind
setTimeout(() => process.exit(0), 1000).unref();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
