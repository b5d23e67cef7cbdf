/**
 * One loopback hop without the engine: a BlockService over a fake span (busy-waits `computeMs` per step, echoes its
 * input) behind a TCP libp2p node, and a RemoteSpan client in the same process. Prints the step round trip's median,
 * p10 and p90 and the overhead over `computeMs`: what the transport path (framing, codec, noise, yamux, the
 * scheduler) costs, apart from the model.
 *
 *   npx tsx bench/hop-probe.ts [computeMs=0] [batchWindowMs=server default]   (N=300 steps; env N to change)
 */
import '../src/util/polyfills.js';
import { createSwarmNode } from '../src/swarm/node.js';
import { BlockService } from '../src/server/block-service.js';
import { BLOCK_PROTOCOL } from '../src/wire/protocols.js';
import { openRemoteSpan } from '../src/client/remote-span.js';
import type { SpanExecutor } from '../src/engine/types.js';

const H = 576;
const computeMs = Number(process.argv[2] ?? 0);
const windowMs = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
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
const server = await createSwarmNode({ transport: 'tcp' });
const service = new BlockService(fakeSpan(), windowMs === undefined ? {} : { batchWindowMs: windowMs });
await server.libp2p.handle(BLOCK_PROTOCOL, (stream, conn) => service.handleStream(stream, conn), { maxInboundStreams: 256, maxOutboundStreams: 256 });
const client = await createSwarmNode({ transport: 'tcp', bootstrap: [server.multiaddrs[0]!] });
const span = await openRemoteSpan(client.libp2p, { peerId: server.peerId.toString() }, { maxLength: 4096, start: 0, end: 30, hiddenSize: H });
const hidden = new Float32Array(H).fill(0.5);
const N = Number(process.env.N ?? 300);
for (let i = 0; i < 20; i++) await span.step({ position: i, tokens: 1, hidden });
const times: number[] = [];
for (let i = 20; i < 20 + N; i++) { const t = performance.now(); await span.step({ position: i, tokens: 1, hidden }); times.push(performance.now() - t); }
times.sort((a, b) => a - b);
console.log(JSON.stringify({ computeMs, windowMs, median: times[N >> 1]!.toFixed(3), p10: times[Math.floor(N * 0.1)]!.toFixed(3), p90: times[Math.floor(N * 0.9)]!.toFixed(3), overhead: (times[N >> 1]! - computeMs).toFixed(3) }));
await span.close(); await client.stop(); await server.stop(); service.close();
process.exit(0);
