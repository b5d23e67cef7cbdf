/**
 * Servers the client avoids after a failure (Petals' ban list): 15 s the first time, doubling on each repeat up to a
 * cap. A server that later serves a whole session without failing is forgiven (sessions call `succeeded` on close),
 * so a server that fails every few steps keeps doubling. Shared by all sessions of one client.
 */
export interface BanListOptions {
  /** First ban (ms). Default 15 000. */
  readonly baseMs?: number;
  /** Longest ban (ms). Default 10 minutes. */
  readonly maxMs?: number;
  /** Clock (ms); tests pass their own. */
  readonly now?: () => number;
}

export interface BanEntry {
  readonly peerId: string;
  readonly until: number;
  readonly strikes: number;
  readonly reason: string;
}

export class BanList {
  private readonly entries = new Map<string, BanEntry>();
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;
  /** Bans issued so far (for stats and tests). */
  total = 0;

  constructor(options: BanListOptions = {}) {
    this.baseMs = options.baseMs ?? 15_000;
    this.maxMs = options.maxMs ?? 10 * 60_000;
    this.now = options.now ?? Date.now;
  }

  /** Bans `peerId`; returns the ban's length (ms). */
  ban(peerId: string, reason = 'failure'): number {
    const strikes = (this.entries.get(peerId)?.strikes ?? 0) + 1;
    const duration = Math.min(this.maxMs, this.baseMs * 2 ** (strikes - 1));
    this.entries.set(peerId, { peerId, until: this.now() + duration, strikes, reason });
    this.total++;
    return duration;
  }

  /** Bans `peerId` for `ms` (never shortening a longer ban): for a verdict, not a failure. */
  banFor(peerId: string, ms: number, reason: string): void {
    const entry = this.entries.get(peerId);
    const until = Math.max(this.now() + ms, entry?.until ?? 0);
    this.entries.set(peerId, { peerId, until, strikes: (entry?.strikes ?? 0) + 1, reason });
    this.total++;
  }

  isBanned(peerId: string): boolean {
    const entry = this.entries.get(peerId);
    return entry !== undefined && entry.until > this.now();
  }

  /** A success forgives earlier strikes (once the ban itself is over). */
  succeeded(peerId: string): void {
    const entry = this.entries.get(peerId);
    if (entry && entry.until <= this.now()) this.entries.delete(peerId);
  }

  /** Current bans. */
  list(): BanEntry[] {
    const now = this.now();
    return [...this.entries.values()].filter((entry) => entry.until > now);
  }

  strikes(peerId: string): number {
    return this.entries.get(peerId)?.strikes ?? 0;
  }

  /** A predicate for the route planner. */
  readonly predicate = (peerId: string): boolean => this.isBanned(peerId);
}
