/** `corolla gateway`'s receipt flags: an account, --chain-id, --reward-pool and --oracle-url, all four or none. */
import { describe, expect, it } from 'vitest';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { receiptSettingsFrom } from '../../src/cli/gateway.js';
import { UsageError } from '../../src/cli/errors.js';

const key = generatePrivateKey();
const POOL = '0x00000000000000000000000000000000000000aa';

describe('corolla gateway receipt settings', () => {
  it('gives none without any of the four', async () => {
    expect(await receiptSettingsFrom({}, {})).toBeUndefined();
  });

  it('takes the four from flags or the environment', async () => {
    const fromFlags = await receiptSettingsFrom({ 'private-key': key, 'chain-id': '31337', 'reward-pool': POOL, 'oracle-url': 'http://127.0.0.1:8300' }, {});
    expect(fromFlags).toMatchObject({ chainId: 31337, rewardPool: POOL, oracleUrl: 'http://127.0.0.1:8300' });
    expect(fromFlags!.account.address).toBe(privateKeyToAccount(key).address);
    const fromEnv = await receiptSettingsFrom({}, { COROLLA_PRIVATE_KEY: key, COROLLA_CHAIN_ID: '1', COROLLA_REWARD_POOL: POOL, COROLLA_ORACLE_URL: 'https://oracle.example' });
    expect(fromEnv).toMatchObject({ chainId: 1, rewardPool: POOL, oracleUrl: 'https://oracle.example' });
  });

  it('refuses some without the others, naming what is missing, and bad values', async () => {
    await expect(receiptSettingsFrom({ 'private-key': key }, {})).rejects.toThrow(/missing: --chain-id, --reward-pool, --oracle-url/);
    await expect(receiptSettingsFrom({ 'chain-id': '1', 'reward-pool': POOL, 'oracle-url': 'http://x' }, {})).rejects.toThrow(/missing: an account/);
    await expect(receiptSettingsFrom({ 'private-key': key, 'chain-id': '1', 'reward-pool': '0x12', 'oracle-url': 'http://x' }, {})).rejects.toBeInstanceOf(UsageError);
    await expect(receiptSettingsFrom({ 'private-key': key, 'chain-id': 'one', 'reward-pool': POOL, 'oracle-url': 'http://x' }, {})).rejects.toThrow(/chain-id/);
    await expect(receiptSettingsFrom({ 'private-key': key, 'chain-id': '1', 'reward-pool': POOL, 'oracle-url': 'not a url' }, {})).rejects.toThrow(/oracle-url/);
  });
});
