/**
 * The state several gateways share through one Redis, so that behind a load balancer they enforce one rate limit per
 * key, see one revocation list and list each other's live sessions. Every key lies under a prefix and expires
 * (except the revocation set, which must not). Redis being away is a 503 (SharedStateError) at once, never a hang:
 * see the connection limits in defaults.ts.
 */
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { CorollaError } from '../../errors.js';
import { silentLogger, type ComponentLogger, type Logger } from '../../util/logger.js';
import { SharedStateError } from '../errors.js';
import type { KeyLimits, LiveSession, SharedState } from '../types.js';
import {
  DEFAULT_KEY_PREFIX,
  DEFAULT_SESSION_TTL_MS,
  MAX_LISTED_SESSIONS,
  RATE_WINDOW_SECONDS,
  REDIS_COMMAND_TIMEOUT_MS,
  REDIS_CONNECT_TIMEOUT_MS,
  REDIS_MAX_RECONNECT_DELAY_MS,
  SESSION_SCAN_COUNT,
} from './defaults.js';
import { RateBudgets } from './rate-limits.js';

export interface RedisSharedStateOptions {
  /** redis:// or rediss:// URL. */
  readonly url: string;
  /** Prefix of every key written (default 'corolla:'); gateways that share state must share it. */
  readonly keyPrefix?: string;
  /** How long a session outlives its last putSession (ms). */
  readonly sessionTtlMs?: number;
  readonly logger?: ComponentLogger;
}

export class RedisSharedState implements SharedState {
  private readonly budgets: RateBudgets;
  private readonly revokedKey: string;
  private readonly sessionKeyPrefix: string;

  private constructor(
    private readonly redis: Redis,
    keyPrefix: string,
    private readonly sessionTtlMs: number,
    private readonly log: Logger,
  ) {
    this.budgets = new RateBudgets(
      keyPrefix,
      ({ keyPrefix: limiterPrefix, points }) =>
        // rejectIfRedisNotReady: while reconnecting, fail at once rather than wait (there is no insurance limiter:
        // a per-gateway fallback would multiply the limit by the number of gateways)
        new RateLimiterRedis({ storeClient: redis, keyPrefix: limiterPrefix, points, duration: RATE_WINDOW_SECONDS, rejectIfRedisNotReady: true }),
    );
    this.revokedKey = `${keyPrefix}revoked`;
    this.sessionKeyPrefix = `${keyPrefix}session:`;
  }

  /** Connects (within REDIS_CONNECT_TIMEOUT_MS) or throws SharedStateError naming the URL, password hidden. */
  static async connect(options: RedisSharedStateOptions): Promise<RedisSharedState> {
    const log = (options.logger ?? silentLogger).forComponent('corolla:gateway:state');
    const where = redactedUrl(options.url);
    if (!/^rediss?:\/\//i.test(options.url)) throw new SharedStateError(`the Redis URL ${where} must start with redis:// or rediss://`);
    const redis = new Redis(options.url, {
      lazyConnect: true,
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (attempt) => Math.min(attempt * 200, REDIS_MAX_RECONNECT_DELAY_MS),
    });
    // without a listener ioredis prints errors itself; one line per outage is enough (it retries every 2 s)
    let lastError: Error | undefined;
    redis.on('error', (error: Error) => {
      if (lastError?.message !== error.message) log.error('Redis at %s: %s', where, error.message);
      lastError = error;
    });
    redis.on('ready', () => {
      if (lastError !== undefined) log('Redis at %s is back', where);
      lastError = undefined;
    });
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      const reason = lastError ?? error;
      throw new SharedStateError(`cannot connect to Redis at ${where}: ${reason instanceof Error ? reason.message : String(reason)}`, {
        cause: reason,
      });
    }
    log('connected to Redis at %s', where);
    return new RedisSharedState(redis, options.keyPrefix ?? DEFAULT_KEY_PREFIX, options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS, log);
  }

  takeRequest(subject: string, limits: KeyLimits): Promise<void> {
    return this.guard('take a request from a rate limit', () => this.budgets.takeRequest(subject, limits));
  }

  checkTokens(subject: string, limits: KeyLimits): Promise<void> {
    return this.guard('check a token budget', () => this.budgets.checkTokens(subject, limits));
  }

  chargeTokens(subject: string, tokens: number, limits: KeyLimits): Promise<void> {
    return this.guard('charge a token budget', () => this.budgets.chargeTokens(subject, tokens, limits));
  }

  async revokeKey(keyId: string): Promise<void> {
    await this.guard('revoke a key', () => this.redis.sadd(this.revokedKey, keyId));
  }

  async isRevoked(keyId: string): Promise<boolean> {
    return (await this.guard('check a revocation', () => this.redis.sismember(this.revokedKey, keyId))) === 1;
  }

  async putSession(session: LiveSession): Promise<void> {
    await this.guard('store a live session', () =>
      this.redis.set(this.sessionKeyPrefix + session.id, JSON.stringify(session), 'PX', this.sessionTtlMs),
    );
  }

  async removeSession(id: string): Promise<void> {
    await this.guard('remove a live session', () => this.redis.del(this.sessionKeyPrefix + id));
  }

  /** Every gateway's live sessions: SCAN (never KEYS, which blocks Redis) and one MGET per step, at most MAX_LISTED_SESSIONS. */
  sessions(): Promise<LiveSession[]> {
    return this.guard('list live sessions', async () => {
      const pattern = `${escapeGlob(this.sessionKeyPrefix)}*`;
      const out: LiveSession[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', SESSION_SCAN_COUNT);
        cursor = next;
        const wanted = keys.slice(0, MAX_LISTED_SESSIONS - out.length);
        // a key may expire between SCAN and MGET: its value is then null
        const values = wanted.length > 0 ? await this.redis.mget(wanted) : [];
        for (const value of values) {
          const session = value === null ? undefined : parseSession(value);
          if (session !== undefined) out.push(session);
          else if (value !== null) this.log.error('ignoring a malformed live session in Redis');
        }
      } while (cursor !== '0' && out.length < MAX_LISTED_SESSIONS);
      return out;
    });
  }

  async close(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      // not connected (Redis is away): nothing to say goodbye to, just stop reconnecting
      this.redis.disconnect();
    }
  }

  /** Our own errors (RateLimitedError) pass; anything Redis throws becomes a 503 whose message names no host. */
  private async guard<T>(what: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (error instanceof CorollaError) throw error;
      this.log.error('Redis failed to %s: %s', what, error instanceof Error ? error.message : String(error));
      throw new SharedStateError(`shared state is unavailable: Redis failed to ${what}`, { cause: error });
    }
  }
}

function parseSession(json: string): LiveSession | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string' ? (value as LiveSession) : undefined;
  } catch {
    return undefined;
  }
}

/** SCAN MATCH treats * ? [ ] and \ as pattern syntax; a prefix is literal. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** The URL as it may be logged and shown: any password replaced. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
