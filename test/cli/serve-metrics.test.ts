/** `corolla serve --send-metrics`: its settings are checked before the model loads, each missing piece named. */
import { describe, expect, it } from 'vitest';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { UsageError } from '../../src/cli/errors.js';
import { metricsSettingsFrom } from '../../src/cli/serve-metrics.js';

const account = privateKeyToAccount(generatePrivateKey());
const POOL = '0x00000000000000000000000000000000000000aa';
const full = { 'send-metrics': true, 'reward-pool': POOL, 'oracle-url': 'http://127.0.0.1:8200', 'rpc-url': 'http://127.0.0.1:8545' };

describe('corolla serve --send-metrics settings', () => {
  it('is off without the flag, and --metrics-interval alone is an error', () => {
    expect(metricsSettingsFrom({}, account, {})).toBeUndefined();
    expect(() => metricsSettingsFrom({ 'metrics-interval': '30' }, account, {})).toThrow(/needs --send-metrics/);
  });

  it('takes its settings from flags or the environment', () => {
    expect(metricsSettingsFrom(full, account, {})).toBeTypeOf('function');
    expect(metricsSettingsFrom({ 'send-metrics': true }, account, { COROLLA_REWARD_POOL: POOL, COROLLA_ORACLE_URL: 'http://o', COROLLA_RPC_URL: 'http://r' })).toBeTypeOf('function');
  });

  it('names what is missing', () => {
    expect(() => metricsSettingsFrom(full, undefined, {})).toThrow(/needs an account/);
    expect(() => metricsSettingsFrom({ ...full, 'oracle-url': undefined }, account, {})).toThrow(/--oracle-url/);
    expect(() => metricsSettingsFrom({ ...full, 'rpc-url': undefined }, account, {})).toThrow(/--rpc-url/);
    expect(() => metricsSettingsFrom({ ...full, 'reward-pool': '0x12' }, account, {})).toThrow(UsageError);
    expect(() => metricsSettingsFrom({ ...full, 'metrics-interval': '0' }, account, {})).toThrow(/metrics-interval/);
  });
});
