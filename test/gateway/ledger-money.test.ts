/** FAR amounts as exact base units, and the export formats built on them. */
import { describe, expect, it } from 'vitest';
import { formatFar, InvalidAmountError, parseFar, usageCsvLines, usageJsonLines } from '../../src/gateway/ledger/index.js';
import type { UsageEntry } from '../../src/gateway/types.js';

describe('FAR amounts', () => {
  it('parses decimals into exact base units and formats them back', () => {
    const cases: Array<[string, bigint]> = [
      ['0.0001', 100_000_000_000_000n],
      ['1', 10n ** 18n],
      ['100', 10n ** 20n],
      ['0.000000000000000001', 1n],
      ['123456789012345678901234567890.123456789012345678', 123456789012345678901234567890123456789012345678n],
      ['0', 0n],
    ];
    for (const [text, units] of cases) {
      expect(parseFar(text)).toBe(units);
      expect(formatFar(units)).toBe(text);
    }
    expect(parseFar('1.50')).toBe(15n * 10n ** 17n);
    expect(formatFar(15n * 10n ** 17n)).toBe('1.5');
    expect(parseFar('0.000')).toBe(0n);
  });

  it('rejects negatives, exponents, too many decimals and anything not a plain decimal, with a typed error', () => {
    const rejected: Array<[string, RegExp]> = [
      ['-1', /negative/],
      ['1e-4', /exponent/],
      ['1E5', /exponent/],
      ['0.0000000000000000001', /at most 18 decimals/],
      ['', /plain decimal/],
      ['abc', /plain decimal/],
      ['1.', /plain decimal/],
      ['.5', /plain decimal/],
      [' 1', /plain decimal/],
      ['+1', /plain decimal/],
      ['1,5', /plain decimal/],
      ['0x10', /plain decimal/],
      ['NaN', /plain decimal/],
    ];
    for (const [text, reason] of rejected) {
      const error = (() => {
        try {
          parseFar(text);
        } catch (e) {
          return e;
        }
      })();
      expect(error, text).toBeInstanceOf(InvalidAmountError);
      expect((error as Error).message, text).toMatch(reason);
    }
    expect(() => formatFar(-1n)).toThrow(InvalidAmountError);
  });
});

const entry: UsageEntry = {
  request: {
    id: 'req-1',
    api: 'far-mesh',
    apiKeyId: null,
    wallet: 'wallet "x", with, commas',
    model: 'm',
    gatewayId: 'gw',
    promptTokens: 3,
    completionTokens: 4,
    costUnits: 10n ** 20n + 1n,
    status: 'completed',
    error: null,
    startedAt: new Date('2026-01-01T00:00:00Z'),
    firstTokenAt: null,
    endedAt: new Date('2026-01-01T00:00:01Z'),
  },
  contributions: [{ peerId: 'p1', ethAddress: '0xab', blockStart: 0, blockEnd: 4, promptTokens: 3, generatedTokens: 4, replayedTokens: 0, failed: false }],
};

describe('usage export formats', () => {
  it('writes CSV with quoting, one row per contribution, and a row for a request no server served', () => {
    const csv = [...usageCsvLines([entry, { request: { ...entry.request, id: 'req-2' }, contributions: [] }])].join('');
    expect(csv.split('\r\n')).toEqual([
      'request_id,started_at,ended_at,model,api_key_id,wallet,status,peer_id,eth_address,block_start,block_end,prompt_tokens,generated_tokens,replayed_tokens,failed,request_cost_far',
      'req-1,2026-01-01T00:00:00.000Z,2026-01-01T00:00:01.000Z,m,,"wallet ""x"", with, commas",completed,p1,0xab,0,4,3,4,0,false,100.000000000000000001',
      'req-2,2026-01-01T00:00:00.000Z,2026-01-01T00:00:01.000Z,m,,"wallet ""x"", with, commas",completed,,,,,,,,,100.000000000000000001',
      '',
    ]);
  });

  it('writes a JSON array with money as decimal strings, and [] for nothing', () => {
    const parsed = JSON.parse([...usageJsonLines([entry, entry])].join(''));
    expect(parsed).toHaveLength(2);
    expect(parsed[0].request).toMatchObject({ id: 'req-1', cost_units: '100000000000000000001', cost_far: '100.000000000000000001', ended_at: '2026-01-01T00:00:01.000Z', first_token_at: null });
    expect(parsed[0].node_contributions).toEqual([{ peer_id: 'p1', eth_address: '0xab', block_start: 0, block_end: 4, prompt_tokens: 3, generated_tokens: 4, replayed_tokens: 0, failed: false }]);
    expect(JSON.parse([...usageJsonLines([])].join(''))).toEqual([]);
  });
});
