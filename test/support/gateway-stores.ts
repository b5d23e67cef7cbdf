/**
 * The ledger and shared state of in-process test gateways.
 * TEMPORARY: simple in-memory stand-ins until the PGlite ledger and the memory state land; then these open the real
 * ones (PGlite in memory, MemorySharedState) and this note goes.
 */
import type { Ledger, LiveSession, SharedState, UsageEntry } from '../../src/gateway/types.js';
import { RequestIdTakenError } from '../../src/gateway/errors.js';

export async function openTestLedger(): Promise<Ledger> {
  const rows = new Map<string, UsageEntry>();
  return {
    async begin(r) {
      if (rows.has(r.id)) throw new RequestIdTakenError(r.id);
      rows.set(r.id, { request: { ...r, completionTokens: 0, costUnits: 0n, status: 'running', error: null, firstTokenAt: null, endedAt: null }, contributions: [] });
    },
    async progress(id, p) {
      const e = rows.get(id)!;
      if (e.request.status !== 'running') return;
      rows.set(id, { request: { ...e.request, completionTokens: p.completionTokens, costUnits: p.costUnits, firstTokenAt: p.firstTokenAt }, contributions: p.contributions });
    },
    async finish(id, p) {
      const e = rows.get(id)!;
      rows.set(id, { request: { ...e.request, completionTokens: p.completionTokens, costUnits: p.costUnits, firstTokenAt: p.firstTokenAt, status: p.status, error: p.error, endedAt: p.endedAt }, contributions: p.contributions });
    },
    async get(id) {
      return rows.get(id);
    },
    async list() {
      return [...rows.values()];
    },
    async recover() {
      return 0;
    },
    async close() {},
  };
}

export async function openTestState(): Promise<SharedState> {
  const sessions = new Map<string, LiveSession>();
  const revoked = new Set<string>();
  return {
    async takeRequest() {},
    async checkTokens() {},
    async chargeTokens() {},
    async revokeKey(id) {
      revoked.add(id);
    },
    async isRevoked(id) {
      return revoked.has(id);
    },
    async putSession(s) {
      sessions.set(s.id, { ...s });
    },
    async removeSession(id) {
      sessions.delete(id);
    },
    async sessions() {
      return [...sessions.values()];
    },
    async close() {},
  };
}
