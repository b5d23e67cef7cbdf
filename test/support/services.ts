/**
 * The system services some tests need (scripts/test-services.sh installs and starts them). A missing one makes the
 * test FAIL with how to start it, never skip.
 */
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env['COROLLA_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const TEST_DATABASE_URL = process.env['COROLLA_TEST_DATABASE_URL'] ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
export const START_SERVICES = 'run `bash scripts/test-services.sh` (installs and starts PostgreSQL, Redis and Chromium)';

/** The test Redis URL once it answers PING; throws saying how to start it. */
export async function requireRedis(): Promise<string> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2_000, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
    return TEST_REDIS_URL;
  } catch (error) {
    throw new Error(`this test needs Redis at ${TEST_REDIS_URL} (${(error as Error).message}): ${START_SERVICES}, or point COROLLA_TEST_REDIS_URL at one`, { cause: error });
  } finally {
    redis.disconnect();
  }
}
