/** A flood of fake JOINING records (free to forge: any fresh id can sign one) must not steer a server's span choice. */
import { describe, expect, it } from 'vitest';
import { Announcer } from '../../src/server/announcer.js';
import { chooseSpan } from '../../src/server/span-choice.js';
import type { ResolvedSettings } from '../../src/server/settings.js';
import type { Registry } from '../../src/swarm/registry/index.js';
import type { ServerState, VerifiedRecord } from '../../src/swarm/records/index.js';
import { silentLogger } from '../../src/util/logger.js';

const NUM_BLOCKS = 6;

function record(peerId: string, start: number, end: number, state: ServerState, effective: number): VerifiedRecord {
  return { record: { peerId, span: { start, end }, state, throughput: { compute: effective, network: effective, effective } } } as unknown as VerifiedRecord;
}

function announcerOver(records: () => VerifiedRecord[]): Announcer {
  const registry = { lookup: async () => records() } as unknown as Registry;
  return new Announcer({
    registry,
    settings: { modelId: 'org/m' } as ResolvedSettings,
    numBlocks: NUM_BLOCKS,
    quantization: 'f32',
    accelerator: { kind: 'cpu', name: 'test' },
    log: silentLogger.forComponent('test'),
    announced: () => {},
  });
}

describe('span choice under a flood of fake JOINING records', () => {
  it('ignores joiners never seen serving, so the gap is still filled', async () => {
    const honest = record('12D3KooWhonest', 2, 6, 'online', 10);
    const fakes = Array.from({ length: 50 }, (_, i) => record(`12D3KooWfake${i}`, 0, 2, 'joining', 1000));
    const announcer = announcerOver(() => [honest, ...fakes]);
    const span = chooseSpan(await announcer.views(), NUM_BLOCKS, 2, { self: '12D3KooWself' });
    expect(span).toEqual({ start: 0, end: 2 });
  });

  it('still counts a JOINING record of a peer seen ONLINE before (a server moving its span)', async () => {
    let records = [record('12D3KooWa', 0, 3, 'online', 10), record('12D3KooWb', 3, 6, 'online', 10)];
    const announcer = announcerOver(() => records);
    await announcer.views();
    records = [record('12D3KooWa', 0, 3, 'joining', 10), record('12D3KooWb', 3, 6, 'online', 10), record('12D3KooWnew', 0, 3, 'joining', 10)];
    const views = await announcer.views();
    expect(views.map((v) => v.peerId).sort()).toEqual(['12D3KooWa', '12D3KooWb']);
  });
});
