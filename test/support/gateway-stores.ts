/**
 * The ledger and shared state of in-process test gateways.
 * TEMPORARY ledger: a simple in-memory stand-in until the PGlite ledger lands. The state is the real MemorySharedState.
 */
import { MemorySharedState } from '../../src/gateway/state/memory.js';
import type { Ledger, SharedState, UsageEntry } from '../../src/gateway/types.js';
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
  return new MemorySharedState();
}
