/**
 * The shared state of a lone gateway, in memory: nothing survives a restart, which is what a single process wants
 * (its sessions die with it, and its limits start afresh).
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import type { KeyLimits, LiveSession, SharedState } from '../types.js';
import { DEFAULT_KEY_PREFIX, DEFAULT_SESSION_TTL_MS, MAX_LISTED_SESSIONS, RATE_WINDOW_SECONDS } from './defaults.js';
import { RateBudgets } from './rate-limits.js';

export interface MemorySharedStateOptions {
  /** How long a session outlives its last putSession (ms); as in Redis, so a forgotten session does not stay forever. */
  readonly sessionTtlMs?: number;
}

export class MemorySharedState implements SharedState {
  private readonly budgets = new RateBudgets(
    DEFAULT_KEY_PREFIX,
    ({ keyPrefix, points }) => new RateLimiterMemory({ keyPrefix, points, duration: RATE_WINDOW_SECONDS }),
  );
  private readonly revoked = new Set<string>();
  private readonly live = new Map<string, { session: LiveSession; expiresAt: number }>();
  private readonly sessionTtlMs: number;

  constructor(options: MemorySharedStateOptions = {}) {
    this.sessionTtlMs = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  }

  takeRequest(subject: string, limits: KeyLimits): Promise<void> {
    return this.budgets.takeRequest(subject, limits);
  }

  checkTokens(subject: string, limits: KeyLimits): Promise<void> {
    return this.budgets.checkTokens(subject, limits);
  }

  chargeTokens(subject: string, tokens: number, limits: KeyLimits): Promise<void> {
    return this.budgets.chargeTokens(subject, tokens, limits);
  }

  async revokeKey(keyId: string): Promise<void> {
    this.revoked.add(keyId);
  }

  async isRevoked(keyId: string): Promise<boolean> {
    return this.revoked.has(keyId);
  }

  async putSession(session: LiveSession): Promise<void> {
    // a copy, as Redis stores one: later changes to the caller's object are not seen until the next put
    this.live.set(session.id, { session: structuredClone(session), expiresAt: Date.now() + this.sessionTtlMs });
  }

  async removeSession(id: string): Promise<void> {
    this.live.delete(id);
  }

  async sessions(): Promise<LiveSession[]> {
    const now = Date.now();
    const out: LiveSession[] = [];
    for (const [id, { session, expiresAt }] of this.live) {
      if (expiresAt <= now) this.live.delete(id);
      else if (out.length < MAX_LISTED_SESSIONS) out.push(structuredClone(session));
    }
    return out;
  }

  async close(): Promise<void> {
    this.live.clear();
  }
}
