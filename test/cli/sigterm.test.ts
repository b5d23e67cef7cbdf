// runs alone: starts computing processes or measures time (vitest.config.ts)
// needs ../shared/models (stories260K)
/**
 * SIGTERM with sessions open: `corolla serve` and `corolla gateway` exit within STOP_BOUND_MS while a client is in
 * the middle of a session, and the client gets a typed error or a terminal event promptly, never a hang; `corolla
 * demo` stops its whole swarm within DEMO_STOP_BOUND_MS and leaves no process behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { RemoteSpanError } from '../../src/client/errors.js';
import { openRemoteSpan } from '../../src/client/remote-span.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { killCorollaProcesses, spawnCorolla, type CorollaProcess } from '../support/cli.js';
import { tempDir } from '../support/files.js';
import { STORIES_GGUF } from '../support/models.js';
import { randomHidden } from '../support/random.js';

/** The stated bound from SIGTERM to exit, with a client session open (the CLIs force an exit 2 s after stopping). */
const STOP_BOUND_MS = 5000;
/** How long the client may take to learn of it. */
const CLIENT_BOUND_MS = 5000;
const H = 64;
/** The demo stops its gateway (≤ STOP_BOUND_MS), then its servers and bootstrap peer together (≤ STOP_BOUND_MS). */
const DEMO_STOP_BOUND_MS = 2 * STOP_BOUND_MS;

let boot: SwarmNode;
beforeAll(async () => {
  boot = await createSwarmNode({ transport: 'tcp' });
});
afterAll(async () => {
  killCorollaProcesses();
  await boot?.stop();
});

async function serve(): Promise<CorollaProcess & { peerId: string }> {
  const proc = spawnCorolla(['serve', '--model', STORIES_GGUF, '--blocks', '0:5', '--bootstrap', boot.multiaddrs[0]!, '--threads', '1']);
  const line = await proc.firstLine;
  const match = /^ready (12D3KooW\w+) 0:5$/.exec(line);
  if (!match) throw new Error(`unexpected first line: ${line}`);
  return Object.assign(proc, { peerId: match[1]! });
}

/** Sends SIGTERM and resolves with the exit and how long it took. */
async function terminate(proc: CorollaProcess): Promise<{ code: number | null; signal: string | null; ms: number }> {
  const exited = once(proc.child, 'exit');
  const started = performance.now();
  proc.child.kill('SIGTERM');
  const [code, signal] = (await exited) as [number | null, string | null];
  return { code, signal, ms: performance.now() - started };
}

const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref())]);

/**
 * A `corolla serve` for the whole model and a `corolla gateway` in front of it; a Far Mesh generation streams,
 * and after 5 events the gateway gets SIGTERM. Returns how it stopped and what the stream saw.
 */
async function sigtermGatewayMidStream() {
  const server = await serve();
  const gateway = spawnCorolla(['gateway', '--bootstrap', boot.multiaddrs[0]!, '--model', STORIES_GGUF, '--port', '0', '--threads', '1', '--data-dir', tempDir('corolla-sigterm-gateway-')], {
    firstLineTimeoutMs: 150_000, // a new PGlite ledger takes seconds, and far more on a loaded machine
  });
  const ready = await gateway.firstLine;
  expect(ready).toMatch(/^ready http:\/\//);
  const url = ready.slice('ready '.length).replace('://0.0.0.0', '://127.0.0.1');
  let response: Response | undefined;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    response = await fetch(`${url}/inference/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 1800, temperature: 0 }),
    });
    if (response.status === 200) break;
    await response.body?.cancel(); // no route yet: the gateway has not found the server
  }
  expect(response?.status, gateway.stderr()).toBe(200);

  const reader = response!.body!.getReader();
  const decoder = new TextDecoder();
  const events: Array<Record<string, unknown>> = [];
  let buffer = '';
  let gotSome: () => void = () => {};
  const some = new Promise<void>((resolve) => (gotSome = resolve));
  const ended = (async (): Promise<'end' | 'connection error'> => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return 'end';
        buffer += decoder.decode(value, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          events.push(JSON.parse(buffer.slice(0, end).replace(/^data: /, '')) as Record<string, unknown>);
          buffer = buffer.slice(end + 2);
          if (events.length >= 5) gotSome();
        }
      }
    } catch {
      return 'connection error';
    }
  })();
  await within(some, 60_000, 'the first tokens');

  const stopped = await terminate(gateway);
  const how = await within(ended, CLIENT_BOUND_MS, 'the stream after SIGTERM');
  await terminate(server);
  console.log(`gateway SIGTERM: exit ${stopped.code} after ${Math.round(stopped.ms)} ms; stream: ${how}; last event ${JSON.stringify(events.at(-1))}`);
  return { stopped, how, events, stderr: gateway.stderr() };
}

describe('SIGTERM with sessions open', () => {
  it(`corolla serve exits 0 within ${STOP_BOUND_MS} ms, and the open session's next step fails with RemoteSpanError`, async () => {
    const server = await serve();
    const span = await openRemoteSpan(boot.libp2p, { peerId: server.peerId }, { maxLength: 64, start: 0, end: 5, hiddenSize: H });
    await span.step({ position: 0, tokens: 4, hidden: randomHidden(4, H, 1) });
    expect(span.position).toBe(4);

    // One step in flight as the signal lands, and one after: each settles, and a failure is typed.
    const inFlight = span.step({ position: 4, tokens: 1, hidden: randomHidden(1, H, 2) }).then(
      () => undefined,
      (error: unknown) => error,
    );
    const stopped = await terminate(server);
    expect(stopped, server.stderr()).toMatchObject({ code: 0, signal: null });
    expect(stopped.ms).toBeLessThan(STOP_BOUND_MS);
    expect(server.stderr()).toMatch(/SIGTERM: stopping/);

    const first = await within(inFlight, CLIENT_BOUND_MS, 'the step in flight');
    if (first !== undefined) expect(first).toBeInstanceOf(RemoteSpanError);
    const after = await within(
      span.step({ position: span.position, tokens: 1, hidden: randomHidden(1, H, 3) }).then(
        () => 'answered',
        (error: unknown) => error,
      ),
      CLIENT_BOUND_MS,
      'a step after the server stopped',
    );
    expect(after).toBeInstanceOf(RemoteSpanError);
    // The stream was reset (or, had the server answered first, an error message with SHUTTING_DOWN).
    const failure = after as RemoteSpanError;
    expect(failure.failure === 'stream' || (failure.failure === 'server' && failure.serverCode === 'SHUTTING_DOWN'), failure.message).toBe(true);
    expect(span.usable).toBe(false);
  }, 120_000);

  it(`corolla gateway exits 0 within ${STOP_BOUND_MS} ms with a generation streaming, whose client gets a last event saying why it ended`, async () => {
    const { stopped, how, events, stderr } = await sigtermGatewayMidStream();
    expect(stopped, stderr).toMatchObject({ code: 0, signal: null });
    expect(stopped.ms).toBeLessThan(STOP_BOUND_MS);
    // It stopped early: far fewer tokens than asked for (the stream's end was awaited within CLIENT_BOUND_MS).
    expect(events.filter((e) => typeof e.token === 'string').length).toBeLessThan(1800);
    expect(how).toBe('end');
    const last = events.at(-1)!;
    expect(last.done === true || last.error !== undefined, JSON.stringify(last)).toBe(true);
  }, 240_000);

  it(`corolla demo (left running) exits 130 within ${DEMO_STOP_BOUND_MS} ms of SIGTERM, and none of its processes outlive it`, async () => {
    const demo = spawnCorolla(['demo', '--port', '0', '--servers', '2', '--max-tokens', '5', '--temperature', '0', '--data-dir', tempDir('corolla-sigterm-demo-')], {
      firstLineTimeoutMs: 240_000, // stdout's first line ends after the first generation
    });
    expect(await demo.firstLine).toMatch(/^Once upon a time/);
    for (const deadline = Date.now() + 10_000; !/keep running/.test(demo.stderr()) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
    expect(demo.stderr()).toMatch(/keep running/);
    const group = demo.child.pid!;
    const stopped = await terminate(demo);
    expect(stopped, demo.stderr()).toMatchObject({ code: 130, signal: null });
    expect(stopped.ms).toBeLessThan(DEMO_STOP_BOUND_MS);
    // Its children (bootstrap peer, servers, gateway) ran in its process group: nothing of the group is left.
    const alive = (): boolean => {
      try {
        process.kill(-group, 0);
        return true;
      } catch {
        return false; // ESRCH: no process in the group
      }
    };
    for (const deadline = Date.now() + 2000; alive() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
    expect(alive()).toBe(false);
  }, 300_000);
});
