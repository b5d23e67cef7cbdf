// runs alone: measures time (vitest.config.ts)
/**
 * What Redis adds: several gateways (here, two SharedState instances on one Redis) enforce one limit, one revocation
 * list and see each other's sessions; everything lies under the key prefix and expires; and Redis being away is a fast
 * SharedStateError, never a hang. Needs Redis (COROLLA_TEST_REDIS_URL, default redis://127.0.0.1:6379; start it with
 * `redis-server --daemonize yes --port 6379`); the outage test also starts a redis-server of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimitedError, SharedStateError } from '../../src/gateway/errors.js';
import { openSharedState } from '../../src/gateway/state/open.js';
import { RedisSharedState } from '../../src/gateway/state/redis.js';
import type { LiveSession, SharedState } from '../../src/gateway/types.js';
import { eventually, sleep } from '../support/wait.js';
import { connectTestState, deleteKeys, rawRedis, uniquePrefix } from '../support/redis.js';
import { freePort } from '../../src/util/processes.js';

const prefix = uniquePrefix('state-redis');
const SESSION_TTL_MS = 1_000;
let gatewayA: SharedState;
let gatewayB: SharedState;
let raw: Redis;

beforeAll(async () => {
  gatewayA = await connectTestState({ keyPrefix: prefix, sessionTtlMs: SESSION_TTL_MS });
  gatewayB = await connectTestState({ keyPrefix: prefix, sessionTtlMs: SESSION_TTL_MS });
  raw = rawRedis();
  await raw.connect();
});

afterAll(async () => {
  await gatewayA?.close();
  await gatewayB?.close();
  raw?.disconnect();
  await deleteKeys(prefix);
});

function session(id: string, gatewayId: string): LiveSession {
  return { id, model: 'tiny', api: 'completions', gatewayId, startedAt: Date.now(), promptTokens: 3, completionTokens: 1, servers: ['peer-x'] };
}

async function failure(operation: Promise<unknown>): Promise<unknown> {
  return operation.then(
    () => expect.fail('expected the operation to fail'),
    (error: unknown) => error,
  );
}

describe('two gateways on one Redis', () => {
  it('enforce one request limit', async () => {
    const limits = { requestsPerMinute: 4 };
    await gatewayA.takeRequest('shared-requests', limits);
    await gatewayB.takeRequest('shared-requests', limits);
    await gatewayA.takeRequest('shared-requests', limits);
    await gatewayB.takeRequest('shared-requests', limits);
    for (const gateway of [gatewayA, gatewayB]) {
      const error = await failure(gateway.takeRequest('shared-requests', limits));
      expect(error).toBeInstanceOf(RateLimitedError);
      expect((error as RateLimitedError).retryAfterMs).toBeGreaterThan(0);
      expect((error as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(60_000);
    }
  });

  it('enforce one token budget', async () => {
    const limits = { tokensPerMinute: 50 };
    await gatewayA.chargeTokens('shared-tokens', 30, limits);
    await gatewayB.checkTokens('shared-tokens', limits);
    await gatewayB.chargeTokens('shared-tokens', 20, limits);
    expect(await failure(gatewayA.checkTokens('shared-tokens', limits))).toBeInstanceOf(RateLimitedError);
  });

  it('see a revocation made at the other at once', async () => {
    expect(await gatewayB.isRevoked('revoked-at-a')).toBe(false);
    await gatewayA.revokeKey('revoked-at-a');
    expect(await gatewayB.isRevoked('revoked-at-a')).toBe(true);
  });

  it('list each other’s live sessions, until they end or their gateway stops refreshing them', async () => {
    await gatewayA.putSession(session('from-a', 'gw-a'));
    await gatewayB.putSession(session('from-b', 'gw-b'));
    for (const gateway of [gatewayA, gatewayB]) {
      const listed = (await gateway.sessions()).map((s) => `${s.id}@${s.gatewayId}`).sort();
      expect(listed).toEqual(['from-a@gw-a', 'from-b@gw-b']);
    }
    await gatewayB.removeSession('from-b');
    expect((await gatewayA.sessions()).map((s) => s.id)).toEqual(['from-a']);
    // gateway A "dies": it stops refreshing, and its session disappears from B's listing
    await eventually(async () => (await gatewayB.sessions()).length === 0, SESSION_TTL_MS * 5, 50);
  });

  it('keep every key under the prefix, each with an expiry (revocations excepted)', async () => {
    await gatewayA.takeRequest('ttl-check', { requestsPerMinute: 10 });
    await gatewayA.chargeTokens('ttl-check', 5, { tokensPerMinute: 10 });
    await gatewayA.putSession(session('ttl-check', 'gw-a'));
    const keys = await raw.keys(`${prefix}*`);
    expect(keys.sort()).toEqual(expect.arrayContaining([`${prefix}rate:requests:ttl-check`, `${prefix}rate:tokens:ttl-check`, `${prefix}session:ttl-check`]));
    for (const key of keys) {
      const ttl = await raw.pttl(key);
      if (key === `${prefix}revoked`) expect(ttl).toBe(-1);
      else {
        expect(ttl, key).toBeGreaterThan(0);
        expect(ttl, key).toBeLessThanOrEqual(60_000);
      }
    }
    expect(await raw.get(`${prefix}session:ttl-check`)).toContain('"gatewayId":"gw-a"');
  });

  it('list sessions by SCAN across many keys', async () => {
    const ids = Array.from({ length: 450 }, (_, i) => `many-${i}`);
    await Promise.all(ids.map((id) => gatewayA.putSession(session(id, 'gw-a'))));
    const listed = new Set((await gatewayB.sessions()).map((s) => s.id));
    for (const id of ids) expect(listed.has(id)).toBe(true);
    await Promise.all(ids.map((id) => gatewayA.removeSession(id)));
  });
});

describe('Redis away', () => {
  it('fails to open at once with SharedStateError when nothing listens', async () => {
    const started = Date.now();
    const error = await failure(openSharedState({ redisUrl: 'redis://:hunter2@127.0.0.1:1' }));
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(error).toBeInstanceOf(SharedStateError);
    expect((error as SharedStateError).httpStatus).toBe(503);
    expect((error as Error).message).toContain('127.0.0.1:1');
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('rejects a URL that is not redis://', async () => {
    expect(await failure(openSharedState({ redisUrl: 'http://127.0.0.1:6379' }))).toBeInstanceOf(SharedStateError);
  });

  it('answers SharedStateError within 3 s when Redis dies under a running gateway, and closes cleanly', async () => {
    const port = await freePort();
    const server = await startRedisServer(port);
    let state: SharedState | undefined;
    try {
      state = await openSharedState({ redisUrl: `redis://127.0.0.1:${port}`, keyPrefix: prefix });
      await state.takeRequest('outage', { requestsPerMinute: 5 });
      server.kill('SIGKILL');
      await new Promise((resolve) => server.once('exit', resolve));
      await sleep(50);
      const s = state;
      const operations: Array<[string, () => Promise<unknown>]> = [
        ['takeRequest', () => s.takeRequest('outage', { requestsPerMinute: 5 })],
        ['checkTokens', () => s.checkTokens('outage', { tokensPerMinute: 5 })],
        ['chargeTokens', () => s.chargeTokens('outage', 3, { tokensPerMinute: 5 })],
        ['isRevoked', () => s.isRevoked('outage')],
        ['revokeKey', () => s.revokeKey('outage')],
        ['putSession', () => s.putSession(session('outage', 'gw-a'))],
        ['sessions', () => s.sessions()],
      ];
      for (const [name, operation] of operations) {
        const started = Date.now();
        const error = await failure(operation());
        expect(error, name).toBeInstanceOf(SharedStateError);
        expect(Date.now() - started, name).toBeLessThan(3_000);
      }
    } finally {
      if (server.exitCode === null) server.kill('SIGKILL');
      const started = Date.now();
      await state?.close();
      expect(Date.now() - started).toBeLessThan(1_000);
    }
  });

  it('is a RedisSharedState that quits its connection on close', async () => {
    const state = await connectTestState({ keyPrefix: prefix });
    expect(state).toBeInstanceOf(RedisSharedState);
    await state.close();
    expect(await failure(state.isRevoked('x'))).toBeInstanceOf(SharedStateError);
  });
});

/** A throwaway redis-server (no persistence), ready when it answers. */
async function startRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (error) =>
      reject(new Error(`this test starts its own redis-server, which failed (${error.message}); install it with \`apt-get install redis-server\``)),
    ),
  );
  const ready = eventually(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    10_000,
    50,
  );
  await Promise.race([ready, spawnError]);
  return child;
}
