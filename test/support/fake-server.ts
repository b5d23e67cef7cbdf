/**
 * A block-protocol server with injectable faults, for testing how the client treats every kind of bad reply. It runs
 * the real engine (a SpanExecutor), so until its fault fires its replies are exactly a real server's.
 */
import { StepAttester } from '../../src/server/attestation.js';
import { asReceived } from '../../src/wire/attestation.js';
import type { PlannerRecord } from '../../src/client/route-planner.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { SpanExecutor } from '../../src/engine/types.js';
import type { ModelSource } from '../../src/model/types.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { messageChannel } from '../../src/wire/channel.js';
import { BLOCK_PROTOCOL } from '../../src/wire/protocols.js';

export type FaultKind =
  | 'error' | 'step-id' | 'position' | 'session' | 'shape' | 'dtype' | 'nan' | 'hang' | 'reset' | 'open-refused'
  /** From step `atStep` on, every output is scaled by 1 + 1e-6 (another engine that rounds differently). */
  | 'perturb'
  /** Step `atStep`'s output is scaled by 1e30 (finite, but no hidden state is that large). */
  | 'huge'
  /** The `opened` reply comes `atStep` ms late. */
  | 'open-slow'
  /** Every step's reply comes `atStep` ms late (a server slower than its record claims). */
  | 'slow-steps'
  /** Step `atStep`'s reply carries no attestation, or one that signs another output. */
  | 'unsigned'
  | 'bad-attestation';

export interface Fault {
  readonly kind: FaultKind;
  /** The n-th step request (1-based, counted per stream) that misbehaves. */
  readonly atStep: number;
}

export interface FakeServer {
  readonly peerId: string;
  steps: number;
  readonly faultsFired: FaultKind[];
  /** Sessions open on this server right now (closed by `close` or by the stream ending). */
  openSessions: number;
  /** The fault of streams opened from now on (each stream counts its own steps). */
  fault?: Fault;
}

export async function serveFakeBlocks(node: SwarmNode, span: SpanExecutor, initial?: Fault): Promise<FakeServer> {
  const state: FakeServer = { peerId: node.peerId, steps: 0, faultsFired: [], openSessions: 0, fault: initial };
  // it signs what it sends, as a real server does (wrong values included: a signed wrong reply is evidence)
  const attester = new StepAttester(node.privateKey, span.range);
  const sessions = new Map<string, object>();
  let serial = 0;
  await node.libp2p.handle(BLOCK_PROTOCOL, async (stream) => {
    const channel = messageChannel(stream);
    const prefix = `f${++serial}-`;
    const fault = state.fault;
    const opened = new Set<string>();
    let steps = 0;
    try {
      for (;;) {
        const { header, tensor } = await channel.receive();
        if (header.type === 'open') {
          if (fault?.kind === 'open-refused') {
            state.faultsFired.push('open-refused');
            await channel.send({ type: 'error', code: 'CACHE_FULL', message: 'injected: no room', sessionId: header.sessionId });
            continue;
          }
          if (fault?.kind === 'open-slow') {
            state.faultsFired.push('open-slow');
            await new Promise((resolve) => setTimeout(resolve, fault.atStep));
          }
          span.openSession(prefix + header.sessionId, header.maxLength);
          opened.add(prefix + header.sessionId);
          state.openSessions++;
          await channel.send({ type: 'opened', sessionId: header.sessionId, position: 0, cacheTokensLeft: span.cacheTokensLeft() });
        } else if (header.type === 'step') {
          steps++;
          state.steps++;
          const H = span.hiddenSize;
          const out = await span.step({ sessionId: prefix + header.sessionId, hidden: tensor!, position: header.position });
          if (fault?.kind === 'slow-steps') await new Promise((resolve) => setTimeout(resolve, fault.atStep));
          let reply = { type: 'stepResult' as const, sessionId: header.sessionId, stepId: header.stepId, position: header.position };
          let data = out;
          let shape = [header.tokens, H];
          let dtype = header.tensor.dtype;
          if (fault?.kind === 'perturb' && steps >= fault.atStep) {
            if (steps === fault.atStep) state.faultsFired.push('perturb');
            data = out.map((value) => value * (1 + 1e-6));
          } else if (fault && steps === fault.atStep) {
            state.faultsFired.push(fault.kind);
            switch (fault.kind) {
              case 'error':
                await channel.send({ type: 'error', code: 'KERNEL_ERROR', message: 'injected failure', sessionId: header.sessionId, stepId: header.stepId });
                continue;
              case 'step-id':
                reply = { ...reply, stepId: header.stepId + 1 };
                break;
              case 'position':
                reply = { ...reply, position: header.position + header.tokens };
                break;
              case 'session':
                reply = { ...reply, sessionId: `${header.sessionId}x`.slice(-128) };
                break;
              case 'shape':
                data = new Float32Array((header.tokens + 1) * H);
                shape = [header.tokens + 1, H];
                break;
              case 'dtype':
                dtype = dtype === 'f32' ? 'f16' : 'f32';
                break;
              case 'nan':
                data = out.slice();
                data[3] = Number.NaN;
                break;
              case 'huge':
                data = out.map((value) => value * 1e30);
                break;
              case 'hang':
                await new Promise(() => {});
                break;
              case 'reset':
                stream.abort(new Error('injected reset'));
                return;
            }
          }
          const key = prefix + header.sessionId;
          if (!sessions.has(key)) sessions.set(key, {});
          const signedData = fault?.kind === 'bad-attestation' && steps === fault.atStep ? data.map((v) => v + 1) : data;
          const attestation = await attester.attest(sessions.get(key)!, header, tensor!, asReceived(signedData, H, dtype), dtype);
          const unsigned = fault?.kind === 'unsigned' && steps === fault.atStep;
          await channel.send(unsigned ? reply : { ...reply, attestation }, { data, shape, dtype });
        } else if (header.type === 'close') {
          span.closeSession(prefix + header.sessionId);
          sessions.delete(prefix + header.sessionId);
          if (opened.delete(prefix + header.sessionId)) state.openSessions--;
          await channel.send({ type: 'closed', sessionId: header.sessionId });
        } else if (header.type === 'ping') {
          await channel.send({ type: 'pong', nonce: header.nonce });
        }
      }
    } catch {
      // stream ended
    } finally {
      for (const id of opened) span.closeSession(id);
      state.openSessions -= opened.size;
    }
  }, { maxInboundStreams: 64 });
  return state;
}

/** One fake server of a fake swarm: its blocks and the compute (tok/s) and engine its record claims. */
export interface FakeServerSpec {
  readonly start: number;
  readonly end: number;
  readonly compute: number;
  readonly engine?: string;
}

export interface FakeSwarm {
  /** In the order of the specs. */
  readonly servers: FakeServer[];
  readonly nodes: SwarmNode[];
  readonly spans: SpanExecutor[];
  /** The records a directory would hold for them (online, plenty of cache, no load). */
  readonly records: PlannerRecord[];
  /** A client node (not connected yet: sessions dial the records' addresses). */
  readonly client: SwarmNode;
  stop(): Promise<void>;
}

/** Starts one fake block server per spec (real spans of `source` on the memory transport), their records, and a client. */
export async function startFakeSwarm(source: ModelSource, specs: readonly FakeServerSpec[]): Promise<FakeSwarm> {
  const servers: FakeServer[] = [];
  const nodes: SwarmNode[] = [];
  const spans: SpanExecutor[] = [];
  for (const { start, end } of specs) {
    const span = await loadSpan(source, { start, end });
    spans.push(span);
    const node = await createSwarmNode({ transport: 'memory' });
    nodes.push(node);
    servers.push(await serveFakeBlocks(node, span));
  }
  const records: PlannerRecord[] = specs.map(({ start, end, compute, engine }, i) => ({
    peerId: servers[i]!.peerId,
    addrs: nodes[i]!.multiaddrs,
    span: { start, end },
    numBlocks: source.config.numLayers,
    state: 'online',
    throughput: { compute, network: 1e6, effective: compute },
    cacheTokensLeft: 100_000,
    load: { activeSessions: 0, queuedSteps: 0 },
    ...(engine ? { engine } : {}),
  }));
  const client = await createSwarmNode({ transport: 'memory' });
  return {
    servers,
    nodes,
    spans,
    records,
    client,
    async stop() {
      await Promise.all([client, ...nodes].map((node) => node.stop()));
      for (const span of spans) await span.dispose();
    },
  };
}
