/**
 * One loopback hop without the engine: a BlockService over a fake span (busy-waits `--compute-ms` per step, echoes
 * its input) behind a TCP libp2p node, and a RemoteSpan client. The server runs in this process, or with
 * `--processes 2` in a child process, as real servers do. Prints the step round trip's median, p10 and p90, the
 * overhead over the compute time, and the CPU time each side spent per step: what the transport path (framing, codec,
 * noise, yamux, attestations, the scheduler) costs, apart from the model.
 *
 * By default the client opens a direct lane (swarm/lanes.ts); `--libp2p` keeps the step traffic on a libp2p stream.
 *
 *   npx tsx bench/hop-probe.ts [--compute-ms 0] [--processes 1|2] [--steps 1000] [--batch-window-ms N] [--libp2p]
 */
import '../src/util/polyfills.js';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { createSwarmNode } from '../src/swarm/node.js';
import { BlockService } from '../src/server/block-service.js';
import { StepAttester } from '../src/server/attestation.js';
import { BLOCK_PROTOCOL } from '../src/wire/protocols.js';
import { openRemoteSpan } from '../src/client/remote-span.js';
import type { SpanExecutor } from '../src/engine/types.js';

const { values } = parseArgs({
  options: {
    'compute-ms': { type: 'string', default: '0' },
    processes: { type: 'string', default: '1' },
    steps: { type: 'string', default: '1000' },
    'batch-window-ms': { type: 'string' },
    serve: { type: 'boolean', default: false },
    libp2p: { type: 'boolean', default: false },
  },
});
const H = 576;
const computeMs = Number(values['compute-ms']);
const windowMs = values['batch-window-ms'] === undefined ? undefined : Number(values['batch-window-ms']);

function fakeSpan(): SpanExecutor {
  const sessions = new Map<string, { position: number; maxLength: number }>();
  return {
    range: { start: 0, end: 30 }, hiddenSize: H, contextLength: 8192, prefillChunkTokens: 512, cacheBytesPerToken: 1,
    openSession(id, maxLength) { const s = { id, position: 0, maxLength }; sessions.set(id, s); return s as never; },
    closeSession(id) { sessions.delete(id); },
    session(id) { return sessions.get(id) as never; },
    rewind(id, p) { sessions.get(id)!.position = p; },
    async step(step) {
      const t = performance.now();
      while (performance.now() - t < computeMs); // the engine blocks the event loop too
      const s = sessions.get(step.sessionId)!;
      s.position = (step.position ?? s.position) + step.hidden.length / H;
      return new Float32Array(step.hidden);
    },
    async stepBatch(steps) { return Promise.all(steps.map((s) => this.step(s))); },
    async forward(h) { return new Float32Array(h); },
    cacheTokensLeft() { return 100000; },
    async dispose() {},
  };
}

/** Starts a server node; returns its address and peer id. */
async function serve(): Promise<{ address: string; peerId: string; stop: () => Promise<void> }> {
  const server = await createSwarmNode({ transport: 'tcp' });
  const service = new BlockService(fakeSpan(), { attester: new StepAttester(server.privateKey, { start: 0, end: 30 }), ...(windowMs === undefined ? {} : { batchWindowMs: windowMs }) });
  await server.libp2p.handle(BLOCK_PROTOCOL, (stream, conn) => service.handleStream(stream, conn), { maxInboundStreams: 256, maxOutboundStreams: 256 });
  await server.lanes!.handle(BLOCK_PROTOCOL, (socket, peer) => void service.handleLane(socket, peer));
  return { address: server.multiaddrs[0]!, peerId: server.peerId.toString(), stop: async () => (service.close(), await server.stop()) };
}

const cpuMicros = () => { const u = process.cpuUsage(); return u.user + u.system; };

if (values.serve) {
  // child mode: print the address, then this process's CPU time on every SIGUSR2
  const { address, peerId } = await serve();
  process.on('SIGUSR2', () => console.log(String(cpuMicros())));
  process.on('SIGTERM', () => process.exit(0)); // writes a --cpu-prof profile, where SIGKILL would not
  console.log(`${address} ${peerId}`);
} else {
  let child: ChildProcessByStdio<null, Readable, null> | undefined;
  let server: Awaited<ReturnType<typeof serve>> | undefined;
  const nextLine = () => new Promise<string>((resolve) => child!.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  let address: string, peerId: string;
  if (values.processes === '2') {
    // node --cpu-prof on this process profiles the server process too
    const args = [...process.execArgv.filter((arg) => arg.startsWith('--cpu-prof')), '--import', 'tsx', import.meta.filename, '--serve', '--compute-ms', String(computeMs), ...(windowMs === undefined ? [] : ['--batch-window-ms', String(windowMs)])];
    child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    [address, peerId] = (await nextLine()).split(' ') as [string, string];
  } else {
    server = await serve();
    ({ address, peerId } = server);
  }
  const serverCpu = async () => (child ? (child.kill('SIGUSR2'), Number(await nextLine())) : NaN);
  const client = await createSwarmNode({ transport: 'tcp', bootstrap: [address] });
  const span = await openRemoteSpan(client.libp2p, { peerId }, { maxLength: 1_000_000, start: 0, end: 30, hiddenSize: H }, values.libp2p ? {} : { lanes: client.lanes });
  const hidden = new Float32Array(H).fill(0.5);
  const N = Number(values.steps);
  for (let i = 0; i < 20; i++) await span.step({ position: i, tokens: 1, hidden });
  const [client0, server0, clientSystem0] = [cpuMicros(), await serverCpu(), process.cpuUsage().system];
  const times: number[] = [];
  for (let i = 20; i < 20 + N; i++) {
    const t = performance.now();
    await span.step({ position: i, tokens: 1, hidden });
    times.push(performance.now() - t);
  }
  const [client1, server1, clientSystem1] = [cpuMicros(), await serverCpu(), process.cpuUsage().system];
  times.sort((a, b) => a - b);
  const ms = (x: number) => Number(x.toFixed(3));
  console.log(JSON.stringify({
    processes: child ? 2 : 1, transport: values.libp2p ? 'libp2p' : 'lane', compute_ms: computeMs, window_ms: windowMs,
    median_ms: ms(times[N >> 1]!), p10_ms: ms(times[Math.floor(N * 0.1)]!), p90_ms: ms(times[Math.floor(N * 0.9)]!),
    overhead_ms: ms(times[N >> 1]! - computeMs),
    // the client's CPU includes the fake span's busy wait when the server shares its process
    client_cpu_ms_per_step: ms((client1 - client0) / N / 1000),
    // kernel time: socket calls, and on a VM the cost of waking an idle vCPU
    client_system_cpu_ms_per_step: ms((clientSystem1 - clientSystem0) / N / 1000),
    ...(child ? { server_cpu_ms_per_step: ms((server1 - server0) / N / 1000) } : {}),
  }));
  await span.close();
  await client.stop();
  await server?.stop();
  if (child) await new Promise((resolve) => (child!.once('exit', resolve), child!.kill('SIGTERM')));
  process.exit(0);
}
