// runs alone: starts computing processes or measures time (vitest.config.ts)
/**
 * The gateway as users run it: `corolla gateway` processes in front of a multi-process swarm (`corolla dht`,
 * `corolla serve`), driven over HTTP by the official `openai` client and by fetch. Covers what only real processes
 * show: greedy text equal to local generation, a SIGKILLed server mid-stream (no error, both servers credited), a
 * SIGKILLed gateway mid-stream (an `interrupted` record after restart), and two gateways sharing one Redis (one rate
 * limit, one revocation).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCorolla, type CorollaProcess } from '../../src/cli/processes.js';
import { LEDGER_FLUSH_TOKENS } from '../../src/gateway/defaults.js';
import { generateText } from '../../src/inference/generate.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { tempDir } from '../support/files.js';
import { STORIES_GGUF } from '../support/models.js';
import { requireRedis } from '../support/services.js';

const MODEL = 'stories260K';
const started: CorollaProcess[] = [];
const id = randomBytes(4).toString('hex');
const ADMIN_KEY = `sk-admin-${id}-0123456789`;
const ALICE_KEY = `sk-alice-${id}-0123456789`;
const BOB_KEY = `sk-bob-${id}-01234567890`;
let keysFile: string;
let local: LocalModel;

async function dht(): Promise<string> {
  const p = await startCorolla('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'], { ready: /^\/ip4\// });
  started.push(p);
  return p.readyLine.trim();
}

async function serve(blocks: string, bootstrap: string): Promise<CorollaProcess & { peerId: string }> {
  const p = await startCorolla(`serve ${blocks}`, ['serve', '--model', STORIES_GGUF, '--blocks', blocks, '--bootstrap', bootstrap, '--threads', '1'], { ready: /^ready /, timeoutMs: 120_000 });
  started.push(p);
  return Object.assign(p, { peerId: p.readyLine.trim().split(' ')[1]! });
}

async function gateway(bootstrap: string, args: string[]): Promise<CorollaProcess & { url: string }> {
  const p = await startCorolla('gateway', ['gateway', '--bootstrap', bootstrap, '--model', STORIES_GGUF, '--port', '0', '--threads', '1', '--api-keys', keysFile, ...args], { ready: /^ready /, timeoutMs: 120_000 });
  started.push(p);
  const url = p.readyLine.trim().slice('ready '.length);
  const deadline = Date.now() + 60_000;
  while (!(await fetch(`${url}/health`)).ok) {
    if (Date.now() > deadline) throw new Error(`the gateway never became healthy:\n${p.stderr().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return Object.assign(p, { url });
}

async function usage(url: string, requestId: string) {
  const response = await fetch(`${url}/v1/usage/${requestId}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  return { status: response.status, body: (await response.json()) as any };
}

/** Starts a long greedy Far Mesh stream and resolves once `after` tokens arrived; `rest` resolves with all the text. */
async function startStream(url: string, requestId: string, maxTokens: number, after: number) {
  const response = await fetch(`${url}/inference/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: maxTokens, temperature: 0, request_id: requestId }),
  });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events: any[] = [];
  let buffer = '';
  let reached: () => void = () => {};
  const reachedAfter = new Promise<void>((resolve) => (reached = resolve));
  const rest = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          events.push(JSON.parse(buffer.slice(0, end).replace(/^data: /, '')));
          buffer = buffer.slice(end + 2);
          if (events.length === after) reached();
        }
      }
    } catch {
      // the connection died with the gateway
    }
    reached();
    return events;
  })();
  await reachedAfter;
  return { events, rest };
}

beforeAll(async () => {
  const dir = tempDir('corolla-gateway-e2e-');
  keysFile = path.join(dir, 'keys.json');
  fs.writeFileSync(
    keysFile,
    JSON.stringify({ keys: [{ id: `admin-${id}`, key: ADMIN_KEY, admin: true }, { id: `alice-${id}`, key: ALICE_KEY, requestsPerMinute: 3 }, { id: `bob-${id}`, key: BOB_KEY }] }),
  );
  local = await LocalModel.open(STORIES_GGUF);
});
const stopAll = () => Promise.all(started.splice(0).map((p) => p.stop()));
afterEach(stopAll, 60_000);
afterAll(async () => {
  await stopAll();
  await local?.close();
}, 60_000);

describe('corolla gateway on a multi-process swarm', () => {
  it('the official openai client: chat, completions, streaming with usage; greedy text equals local generation', async () => {
    const bootstrap = await dht();
    await Promise.all(['0:3', '3:5'].map((b) => serve(b, bootstrap)));
    const { url } = await gateway(bootstrap, ['--data-dir', tempDir('corolla-gateway-ledger-')]);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: BOB_KEY, maxRetries: 0 });

    const prompt = 'Once upon a time';
    const expected = await generateText(local, prompt, { maxTokens: 60, temperature: 0 });
    const completion = await client.completions.create({ model: MODEL, prompt, max_tokens: 60, temperature: 0 });
    expect(completion.choices[0]!.text).toBe(expected);
    expect(completion.usage).toMatchObject({ completion_tokens: 60, total_tokens: completion.usage!.prompt_tokens + 60 });

    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const ids = new Set<string>();
    let usageChunk: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      ids.add(chunk.id);
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usageChunk = chunk.usage;
    }
    expect(ids.size).toBe(1);
    expect(usageChunk?.completion_tokens).toBe(40);
    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 40, temperature: 0 });
    expect(chat.choices[0]!.message.content).toBe(text);

    const seeded = () => client.completions.create({ model: MODEL, prompt, max_tokens: 30, temperature: 0.9, seed: 42 });
    expect((await seeded()).choices[0]!.text).toBe((await seeded()).choices[0]!.text);
  }, 240_000);

  it('a server SIGKILLed mid-stream: the client sees no error, the text is unchanged, and both servers are credited', async () => {
    const bootstrap = await dht();
    const servers = await Promise.all(['0:3', '3:5', '3:5'].map((b) => serve(b, bootstrap)));
    const { url } = await gateway(bootstrap, ['--data-dir', tempDir('corolla-gateway-ledger-')]);
    const requestId = `req_failover_${id}`;
    const maxTokens = 1500;
    const expected = await generateText(local, 'Once upon a time', { maxTokens, temperature: 0 });
    const { rest } = await startStream(url, requestId, maxTokens, 5);
    // progress reaches the ledger in batches (LEDGER_FLUSH_TOKENS, LEDGER_FLUSH_MS): it names the [3,5) server in the route
    let victim: string | undefined;
    for (const deadline = Date.now() + 30_000; !victim && Date.now() < deadline; ) {
      const { body } = await usage(url, requestId);
      victim = body.node_contributions?.find((n: any) => n.block_start === 3)?.peer_id;
      if (!victim) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(victim).toBeDefined();
    servers.find((s) => s.peerId === victim)!.kill();
    const events = await rest;
    const done = events.at(-1);
    expect(done).toMatchObject({ done: true, finish_reason: 'length', tokens_generated: maxTokens });
    expect(events.some((e) => e.error)).toBe(false);
    expect(events.filter((e) => !e.done).map((e) => e.token).join('')).toBe(expected);

    const { body } = await usage(url, requestId);
    expect(body.request).toMatchObject({ status: 'completed', completion_tokens: maxTokens, cost_far: '0.15' });
    const late = body.node_contributions.filter((n: any) => n.block_start === 3);
    expect(late).toHaveLength(2);
    const failed = late.find((n: any) => n.failed)!;
    const replacement = late.find((n: any) => !n.failed)!;
    expect(failed.peer_id).toBe(victim);
    expect(failed.generated_tokens).toBeGreaterThan(0);
    expect(replacement.replayed_tokens).toBeGreaterThan(0);
    // every token the servers computed is credited to exactly one [3,5) server (the last sampled one is never fed back)
    expect(failed.generated_tokens + replacement.generated_tokens).toBe(maxTokens - 1);
    const first = body.node_contributions.find((n: any) => n.block_start === 0);
    expect(first.generated_tokens).toBe(maxTokens - 1);
  }, 240_000);

  it('a gateway SIGKILLed mid-stream leaves an interrupted, consistent record after restart', async () => {
    const bootstrap = await dht();
    await Promise.all(['0:3', '3:5'].map((b) => serve(b, bootstrap)));
    const dataDir = tempDir('corolla-gateway-ledger-');
    const first = await gateway(bootstrap, ['--data-dir', dataDir, '--gateway-id', 'gw-kill']);
    const requestId = `req_killed_${id}`;
    const { events, rest } = await startStream(first.url, requestId, 1800, 2 * LEDGER_FLUSH_TOKENS + 50);
    first.kill();
    await first.exited;
    await rest;
    const received = events.filter((e) => typeof e.token === 'string').length;
    expect(received).toBeGreaterThanOrEqual(2 * LEDGER_FLUSH_TOKENS + 50);
    expect(received).toBeLessThan(1800);

    const second = await gateway(bootstrap, ['--data-dir', dataDir, '--gateway-id', 'gw-kill']);
    const { status, body } = await usage(second.url, requestId);
    expect(status).toBe(200);
    const { request, node_contributions: contributions } = body;
    expect(request.status).toBe('interrupted');
    expect(request.ended_at).not.toBeNull();
    // written in batches: at least the first batch, at most what was streamed
    expect(request.completion_tokens).toBeGreaterThanOrEqual(LEDGER_FLUSH_TOKENS);
    expect(request.completion_tokens).toBeLessThanOrEqual(received);
    expect(BigInt(request.cost_units)).toBe(BigInt(request.completion_tokens) * 100_000_000_000_000n);
    expect(contributions.map((n: any) => [n.block_start, n.block_end])).toEqual([[0, 3], [3, 5]]);
    for (const n of contributions) expect(n.generated_tokens).toBeLessThanOrEqual(request.completion_tokens);
  }, 240_000);

  it('two gateways sharing one Redis enforce one rate limit and one revocation', async () => {
    const redisUrl = await requireRedis();
    const bootstrap = await dht();
    await serve('0:5', bootstrap);
    const [a, b] = await Promise.all([1, 2].map((n) => gateway(bootstrap, ['--data-dir', tempDir(`corolla-gateway-ledger-${n}-`), '--redis-url', redisUrl])));
    const complete = (url: string, key: string) =>
      fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ model: MODEL, prompt: 'Hi', max_tokens: 2 }) });

    // alice may make 3 requests a minute, whichever gateway she reaches
    for (const url of [a.url, b.url, a.url]) {
      const response = await complete(url, ALICE_KEY);
      expect(response.status, await response.text()).toBe(200);
    }
    const limited = await complete(b.url, ALICE_KEY);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await limited.json()) as any).error.code).toBe('rate_limit_exceeded');

    // revoked at one gateway, refused at the other
    expect((await complete(b.url, BOB_KEY)).status).toBe(200);
    const revoke = await fetch(`${a.url}/v1/admin/keys/bob-${id}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(revoke.status).toBe(200);
    const refused = await complete(b.url, BOB_KEY);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as any).error.type).toBe('authentication_error');
  }, 240_000);
});
