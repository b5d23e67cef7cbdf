/**
 * Per-minute request and token budgets on rate-limiter-flexible, the same for memory and Redis: only the limiter
 * class differs. A limiter's `points` is fixed at construction while limits differ per key, so there is one limiter
 * per budget and point count; limiters of one budget share their storage keys (the prefix names the budget, not the
 * count), so in Redis every gateway counts one key's use in one counter whatever limiter counts it.
 */
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { RateLimitedError } from '../errors.js';
import type { KeyLimits } from '../types.js';

export type Budget = 'requests' | 'tokens';

/** Makes the limiter of one budget with `points` per window, its keys under `keyPrefix`. */
export type LimiterFactory = (options: { keyPrefix: string; points: number }) => RateLimiterAbstract;

export class RateBudgets {
  private readonly limiters = new Map<string, RateLimiterAbstract>();

  constructor(
    private readonly keyPrefix: string,
    private readonly makeLimiter: LimiterFactory,
  ) {}

  async takeRequest(subject: string, limits: KeyLimits): Promise<void> {
    const points = limits.requestsPerMinute;
    if (points === undefined) return;
    try {
      await this.limiter('requests', points).consume(subject, 1);
    } catch (error) {
      throw asRateLimited('requests', error);
    }
  }

  async checkTokens(subject: string, limits: KeyLimits): Promise<void> {
    const points = limits.tokensPerMinute;
    if (points === undefined) return;
    const used = await this.limiter('tokens', points).get(subject);
    if (used !== null && used.consumedPoints >= points) throw new RateLimitedError('tokens', retryAfter(used));
  }

  async chargeTokens(subject: string, tokens: number, limits: KeyLimits): Promise<void> {
    const points = limits.tokensPerMinute;
    // the limiter counts whole points; a partial token never happens, and nothing is charged for none
    const charge = Math.ceil(tokens);
    if (points === undefined || !(charge > 0)) return;
    await this.limiter('tokens', points).penalty(subject, charge);
  }

  private limiter(budget: Budget, points: number): RateLimiterAbstract {
    const id = `${budget}:${points}`;
    let limiter = this.limiters.get(id);
    if (limiter === undefined) {
      limiter = this.makeLimiter({ keyPrefix: `${this.keyPrefix}rate:${budget}`, points });
      this.limiters.set(id, limiter);
    }
    return limiter;
  }
}

/** rate-limiter-flexible rejects with a RateLimiterRes when the budget is spent, and with an Error when its store fails. */
function asRateLimited(budget: Budget, rejection: unknown): unknown {
  return rejection instanceof RateLimiterRes ? new RateLimitedError(budget, retryAfter(rejection)) : rejection;
}

/** At least 1 ms: a window that ends this very millisecond still asks the client to wait, never "retry after 0". */
function retryAfter(result: RateLimiterRes): number {
  return Math.max(1, result.msBeforeNext);
}
