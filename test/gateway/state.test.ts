/**
 * The SharedState contract, run against both implementations: memory (a lone gateway) and Redis (needs Redis:
 * COROLLA_TEST_REDIS_URL, default redis://127.0.0.1:6379; `redis-server --daemonize yes --port 6379`).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RateLimitedError } from '../../src/gateway/errors.js';
import { MemorySharedState } from '../../src/gateway/state/memory.js';
import type { LiveSession, SharedState } from '../../src/gateway/types.js';
import { sleep } from '../support/wait.js';
import { connectTestState, deleteKeys, uniquePrefix } from '../support/redis.js';

const SESSION_TTL_MS = 1_000;
const prefix = uniquePrefix('state');
const opened: SharedState[] = [];

afterAll(async () => {
  await Promise.all(opened.map((state) => state.close()));
  await deleteKeys(prefix);
});

const implementations: Array<[string, () => Promise<SharedState>]> = [
  ['memory', async () => new MemorySharedState({ sessionTtlMs: SESSION_TTL_MS })],
  ['redis', () => connectTestState({ keyPrefix: prefix, sessionTtlMs: SESSION_TTL_MS })],
];

function session(id: string, overrides: Partial<LiveSession> = {}): LiveSession {
  return { id, model: 'tiny', api: 'chat.completions', gatewayId: 'gw-1', startedAt: 1_700_000_000_000, promptTokens: 5, completionTokens: 0, servers: ['peer-a'], ...overrides };
}

async function rateLimited(operation: Promise<unknown>): Promise<RateLimitedError> {
  const error = await operation.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(RateLimitedError);
  return error as RateLimitedError;
}

describe.each(implementations)('SharedState in %s', (name, open) => {
  let subjectCount = 0;
  /** A subject no other test touches (Redis keys persist for the window). */
  const subject = () => `${name}-subject-${++subjectCount}`;
  const state = async () => {
    const opened_ = await open();
    opened.push(opened_);
    return opened_;
  };

  it('takes requests until the per-minute budget is spent, then says how long to wait', async () => {
    const s = await state();
    const alice = subject();
    const limits = { requestsPerMinute: 3 };
    for (let i = 0; i < 3; i++) await s.takeRequest(alice, limits);
    const error = await rateLimited(s.takeRequest(alice, limits));
    expect(error.limit).toBe('requests');
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(error.httpStatus).toBe(429);
    // another subject has its own budget
    await s.takeRequest(subject(), limits);
  });

  it('is unlimited when no limit is set', async () => {
    const s = await state();
    const bob = subject();
    for (let i = 0; i < 50; i++) await s.takeRequest(bob, {});
    await s.chargeTokens(bob, 1_000_000, {});
    await s.checkTokens(bob, {});
  });

  it('refuses a request once the token budget is charged in full, and charging never throws', async () => {
    const s = await state();
    const carol = subject();
    const limits = { tokensPerMinute: 100 };
    await s.checkTokens(carol, limits);
    await s.chargeTokens(carol, 60, limits);
    await s.checkTokens(carol, limits);
    await s.chargeTokens(carol, 40, limits);
    const error = await rateLimited(s.checkTokens(carol, limits));
    expect(error.limit).toBe('tokens');
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(60_000);
    // a stream already running keeps being charged past the budget
    await s.chargeTokens(carol, 500, limits);
    await rateLimited(s.checkTokens(carol, limits));
    // the request budget is a different one
    await s.takeRequest(carol, { ...limits, requestsPerMinute: 10 });
  });

  it('revokes keys', async () => {
    const s = await state();
    const key = subject();
    expect(await s.isRevoked(key)).toBe(false);
    await s.revokeKey(key);
    expect(await s.isRevoked(key)).toBe(true);
    expect(await s.isRevoked(subject())).toBe(false);
  });

  it('lists live sessions as last put, and forgets removed ones', async () => {
    const s = await state();
    const [a, b] = [subject(), subject()];
    await s.putSession(session(a));
    await s.putSession(session(b, { api: 'far-mesh' }));
    await s.putSession(session(a, { completionTokens: 7, servers: ['peer-a', 'peer-b'] }));
    const listed = (await s.sessions()).filter((x) => x.id === a || x.id === b).sort((x, y) => x.id.localeCompare(y.id));
    expect(listed).toEqual([session(a, { completionTokens: 7, servers: ['peer-a', 'peer-b'] }), session(b, { api: 'far-mesh' })]);
    await s.removeSession(a);
    expect((await s.sessions()).map((x) => x.id)).not.toContain(a);
    expect((await s.sessions()).map((x) => x.id)).toContain(b);
  });

  it('lets a session expire when it is not refreshed, and keeps it while it is', async () => {
    const s = await state();
    const [stale, fresh] = [subject(), subject()];
    await s.putSession(session(stale));
    await s.putSession(session(fresh));
    // refreshed every quarter of its lifetime, for longer than the stale one lives
    for (let i = 0; i < 5; i++) {
      await sleep(SESSION_TTL_MS / 4);
      await s.putSession(session(fresh, { completionTokens: i }));
    }
    const ids = (await s.sessions()).map((x) => x.id);
    expect(ids).toContain(fresh);
    expect(ids).not.toContain(stale);
  });
});
