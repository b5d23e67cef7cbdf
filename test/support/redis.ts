/** The Redis the shared-state tests use: COROLLA_TEST_REDIS_URL, or a local redis-server; missing, the tests FAIL saying how to start one. */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { TEST_REDIS_URL } from './services.js';
import { RedisSharedState, type RedisSharedStateOptions } from '../../src/gateway/state/redis.js';


/** A key prefix no other test run shares, so test files (and concurrent runs) never see each other's keys. */
export function uniquePrefix(name: string): string {
  return `corolla-test:${name}:${process.pid}:${randomBytes(4).toString('hex')}:`;
}

/** Connects a RedisSharedState to the test Redis, or fails with how to start one. */
export async function connectTestState(options: Omit<RedisSharedStateOptions, 'url'>): Promise<RedisSharedState> {
  try {
    return await RedisSharedState.connect({ url: TEST_REDIS_URL, ...options });
  } catch (error) {
    throw new Error(
      `these tests need Redis at ${TEST_REDIS_URL} (${(error as Error).message}). Start one with ` +
        '`redis-server --daemonize yes --port 6379` (Debian: apt-get install redis-server), or point COROLLA_TEST_REDIS_URL at one.',
      { cause: error },
    );
  }
}

/** A plain client to look at what the state wrote. */
export function rawRedis(): Redis {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0 });
  // a missing Redis is reported by connectTestState; this client stays quiet about it
  redis.on('error', () => {});
  return redis;
}

/** Deletes every key under `prefix` (when Redis is there at all: without it the tests already failed, saying so). */
export async function deleteKeys(prefix: string): Promise<void> {
  const redis = rawRedis();
  try {
    await redis.connect();
  } catch {
    return;
  }
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
