/** Servers announce an engine fingerprint in their signed records; the planner prefers a given one where it can. */
import { describe, expect, it } from 'vitest';
import { planRoute, type PlannerRecord } from '../../src/client/route-planner.js';
import { engineFingerprint } from '../../src/server/announcer.js';
import { parseServerRecord } from '../../src/swarm/records/index.js';

const peer = (n: number) => `12D3KooWPeer${'abcdefghijkmnopqrstuvwxyz'.slice(0, 10)}${n}`;
const server = (n: number, start: number, end: number, compute: number, engine?: string): PlannerRecord => ({
  peerId: peer(n),
  span: { start, end },
  numBlocks: 4,
  state: 'online',
  throughput: { compute, network: 1e6, effective: compute },
  cacheTokensLeft: 10_000,
  load: { activeSessions: 0, queuedSteps: 0 },
  ...(engine ? { engine } : {}),
});

describe('engine fingerprint', () => {
  it('the server derives it from its engine settings', () => {
    expect(engineFingerprint({})).toBe('ort-cpu/f32/act-int8');
    expect(engineFingerprint({ executionProvider: 'cuda', quantizedActivations: false })).toBe('ort-cuda/f32/act-f32');
    expect(engineFingerprint({ kvCacheType: 'f16' })).toBe('ort-cpu/f32/act-int8/kv-f16');
  });

  it('is an optional record field: kept when valid, refused when malformed, absent in older records', () => {
    const now = Date.now();
    const record = {
      v: 1, modelId: 'm', peerId: peer(1), addrs: [], numBlocks: 4, span: { start: 0, end: 4 }, state: 'online',
      throughput: { compute: 1, network: 2, effective: 1 }, cacheTokensLeft: 10, dtype: 'f32', quantization: 'q4_0',
      softwareVersion: '0.1.0', accelerator: { kind: 'cpu', name: 'x' }, load: { activeSessions: 0, queuedSteps: 0 },
      issuedAt: now, expiresAt: now + 1000,
    };
    const older = parseServerRecord(record);
    expect(older.ok && older.value.engine).toBe(undefined);
    const withEngine = parseServerRecord({ ...record, engine: 'ort-cpu/f32/act-int8' });
    expect(withEngine.ok && withEngine.value.engine).toBe('ort-cpu/f32/act-int8');
    expect(parseServerRecord({ ...record, engine: 'ORT CPU' }).ok).toBe(false);
    expect(parseServerRecord({ ...record, engine: 'x'.repeat(65) }).ok).toBe(false);
  });

  it('the planner prefers servers with the wanted fingerprint, and uses another only where none can serve', () => {
    const records = [server(1, 0, 4, 1000, 'ort-cuda/f32/act-f32'), server(2, 0, 4, 10, 'ort-cpu/f32/act-int8'), server(3, 0, 4, 500)];
    expect(planRoute(records, { numBlocks: 4, maxLength: 16 }).hops[0]!.peerId).toBe(peer(1));
    expect(planRoute(records, { numBlocks: 4, maxLength: 16, preferEngine: 'ort-cpu/f32/act-int8' }).hops[0]!.peerId).toBe(peer(2));
    // no server has it: the cheapest still serves
    expect(planRoute(records, { numBlocks: 4, maxLength: 16, preferEngine: 'ort-rocm/f16/act-f16' }).hops[0]!.peerId).toBe(peer(1));
  });
});
