/**
 * Fair quotas of one block service, per peer id and per IP address: open sessions, open streams, reserved KV-cache
 * tokens and request bytes in flight. Every refusal is a QuotaExceededError (QUOTA_EXCEEDED, 429, retryable); other
 * peers keep being served.
 *
 * The KV-cache rule ("a fair share, borrowed when alone"):
 * - While other holders (other peers, or local whole-model sessions) hold sessions, a peer may reserve at most
 *   `peerCacheShare` of the budget (default 1/4), and an IP `peerCacheShare × ipMultiplier` (default 1/2).
 * - On an otherwise idle server a peer may reserve up to the whole budget. Whatever it holds above its share is
 *   borrowed: when another peer then opens a session that fits its own share but not the free budget, the borrower's
 *   newest sessions are closed (SESSION_EXPIRED "preempted", the client replays elsewhere) until it fits, and only
 *   while the borrower is above its share (its last session closed may take it below, sessions being indivisible). So one peer can never hold the cache against everyone else, and the server never
 *   drops out of other clients' routes for it.
 * Local sessions (peerId undefined) are the server's own and are neither limited nor preempted here.
 */
import { QuotaExceededError } from './errors.js';
import type { ServedSession, StreamState } from './session-table.js';

export interface QuotaLimits {
  readonly maxSessionsPerPeer: number;
  readonly maxStreamsPerPeer: number;
  /** Fraction of the KV budget in (0, 1]. */
  readonly peerCacheShare: number;
  readonly maxPeerBytesInFlight: number;
  /** An IP address gets this many peers' worth of each quota. */
  readonly ipMultiplier: number;
}

/** Who asks: the peer id and, over IP transports, its address. */
export interface Requester {
  readonly peerId: string | undefined;
  readonly ip: string | undefined;
}

const sum = (sessions: Iterable<ServedSession>, pick: (s: ServedSession) => boolean): number => {
  let total = 0;
  for (const s of sessions) if (pick(s)) total += s.maxLength;
  return total;
};

export class PeerQuotas {
  private readonly bytes = new Map<string, number>();

  constructor(readonly limits: QuotaLimits, readonly budgetTokens: number) {}

  /** The peer's share of the KV budget, in tokens. */
  get peerShareTokens(): number {
    return Math.floor(this.budgetTokens * this.limits.peerCacheShare);
  }

  private get ipShareTokens(): number {
    return Math.floor(this.budgetTokens * Math.min(1, this.limits.peerCacheShare * this.limits.ipMultiplier));
  }

  /** Throws when `who` already holds its streams' worth (`streams`: every stream being served). */
  admitStream(who: Requester, streams: Iterable<StreamState>): void {
    if (who.peerId === undefined) return;
    let byPeer = 0;
    let byIp = 0;
    for (const s of streams) {
      if (s.peerId === who.peerId) byPeer++;
      if (who.ip !== undefined && s.ip === who.ip) byIp++;
    }
    const { maxStreamsPerPeer: max, ipMultiplier } = this.limits;
    if (byPeer >= max) throw new QuotaExceededError('streams', `at most ${max} block-protocol streams per peer; close one first`);
    if (who.ip !== undefined && byIp >= max * ipMultiplier) throw new QuotaExceededError('streams', `at most ${max * ipMultiplier} block-protocol streams per IP address`);
  }

  /**
   * Checks a new session of `maxLength` tokens for `who` against the session-count and cache quotas. Returns the
   * borrowed sessions of other peers to close so that it fits the free budget (empty when it fits, or when closing
   * borrowed sessions would not make it fit: the engine then says CACHE_FULL).
   */
  admitSession(who: Requester, maxLength: number, sessions: readonly ServedSession[], freeTokens: number): ServedSession[] {
    if (who.peerId === undefined) return [];
    const { maxSessionsPerPeer: maxSessions, ipMultiplier } = this.limits;
    const mine = (s: ServedSession) => s.peerId === who.peerId;
    const myIp = (s: ServedSession) => who.ip !== undefined && s.ip === who.ip;
    const count = sessions.filter(mine).length;
    if (count >= maxSessions) throw new QuotaExceededError('sessions', `at most ${maxSessions} sessions per peer`);
    if (who.ip !== undefined && sessions.filter(myIp).length >= maxSessions * ipMultiplier) {
      throw new QuotaExceededError('sessions', `at most ${maxSessions * ipMultiplier} sessions per IP address`);
    }
    const held = sum(sessions, mine);
    const othersHold = sessions.some((s) => !mine(s));
    const share = this.peerShareTokens;
    if (othersHold && held + maxLength > share) {
      throw new QuotaExceededError('cache', `a peer may reserve at most ${share} of this server's ${this.budgetTokens} KV-cache tokens while others use it; it holds ${held} and asked for ${maxLength} more`);
    }
    if (who.ip !== undefined && sessions.some((s) => !myIp(s))) {
      const ipHeld = sum(sessions, myIp);
      if (ipHeld + maxLength > this.ipShareTokens) {
        throw new QuotaExceededError('cache', `an IP address may reserve at most ${this.ipShareTokens} of this server's ${this.budgetTokens} KV-cache tokens while others use it; it holds ${ipHeld}`);
      }
    }
    return maxLength > freeTokens ? this.reclaim(who, maxLength - freeTokens, sessions) : [];
  }

  /** Sessions of peers above their share, newest first, freeing at least `needed` tokens (or none when they cannot). */
  private reclaim(who: Requester, needed: number, sessions: readonly ServedSession[]): ServedSession[] {
    const share = this.peerShareTokens;
    const held = new Map<string, number>();
    for (const s of sessions) if (s.peerId !== undefined) held.set(s.peerId, (held.get(s.peerId) ?? 0) + s.maxLength);
    const victims: ServedSession[] = [];
    let freed = 0;
    for (const s of [...sessions].sort((a, b) => b.openedAt - a.openedAt)) {
      if (freed >= needed) break;
      if (s.peerId === undefined || s.peerId === who.peerId) continue;
      const peerHeld = held.get(s.peerId)!;
      if (peerHeld <= share) continue; // only a peer above its share is borrowing
      held.set(s.peerId, peerHeld - s.maxLength);
      victims.push(s);
      freed += s.maxLength;
    }
    return freed >= needed ? victims : [];
  }

  /** Counts `bytes` of a request in flight for `who` until `release`; throws when over the peer's or IP's quota. */
  acquireBytes(who: Requester, bytes: number): () => void {
    const keys = [who.peerId !== undefined ? `peer:${who.peerId}` : undefined, who.ip !== undefined ? `ip:${who.ip}` : undefined];
    const max = this.limits.maxPeerBytesInFlight;
    const limitOf = (key: string) => (key.startsWith('ip:') ? max * this.limits.ipMultiplier : max);
    for (const key of keys) {
      if (key === undefined) continue;
      const now = this.bytes.get(key) ?? 0;
      if (now + bytes > limitOf(key)) {
        throw new QuotaExceededError('bytes-in-flight', `${key.startsWith('ip:') ? 'an IP address' : 'a peer'} may have at most ${limitOf(key)} request bytes in flight; ${now} are, this request has ${bytes}`);
      }
    }
    for (const key of keys) if (key !== undefined) this.bytes.set(key, (this.bytes.get(key) ?? 0) + bytes);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const key of keys) {
        if (key === undefined) continue;
        const left = (this.bytes.get(key) ?? 0) - bytes;
        if (left > 0) this.bytes.set(key, left);
        else this.bytes.delete(key);
      }
    };
  }
}
