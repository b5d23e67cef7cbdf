/**
 * `corolla serve --send-metrics`: checked before the model loads (a bad setting fails at once); the returned factory
 * reads the chain id and the RewardPool's epoch schedule, then builds the metrics service (server/services/metrics.ts).
 */
import os from 'node:os';
import path from 'node:path';
import type { LocalAccount } from 'viem';
import { readEpochSchedule } from '../oracle/chain.js';
import { metricsReporting, type MetricsReporting } from '../server/services/metrics.js';
import type { ServiceFactory } from '../server/services/types.js';
import type { Logger } from '../util/logger.js';
import { addressSetting, connect, expectContract, setting } from './chain.js';
import { UsageError } from './errors.js';
import { numberOption } from './options.js';

type Values = { 'send-metrics'?: boolean; 'metrics-interval'?: string; 'data-dir'?: string; 'reward-pool'?: string; 'oracle-url'?: string; 'rpc-url'?: string };

export function metricsSettingsFrom(
  values: Values,
  account: LocalAccount | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ((log: Logger) => Promise<ServiceFactory<MetricsReporting>>) | undefined {
  const seconds = numberOption(values['metrics-interval'], 'metrics-interval', { min: 1 });
  if (!values['send-metrics']) {
    if (seconds !== undefined) throw new UsageError('--metrics-interval needs --send-metrics');
    return undefined;
  }
  if (!account) throw new UsageError('--send-metrics needs an account (--private-key, COROLLA_PRIVATE_KEY or --keystore): the server signs its metrics');
  const rewardPool = addressSetting(values['reward-pool'], env, 'COROLLA_REWARD_POOL', 'reward-pool');
  const oracleUrl = setting(values['oracle-url'], env, 'COROLLA_ORACLE_URL');
  if (!oracleUrl || !URL.canParse(oracleUrl)) throw new UsageError('--send-metrics needs --oracle-url URL (or COROLLA_ORACLE_URL)');
  const rpcUrl = setting(values['rpc-url'], env, 'COROLLA_RPC_URL');
  if (rpcUrl === undefined) throw new UsageError('--send-metrics needs --rpc-url (or COROLLA_RPC_URL)');
  const dataDir = values['data-dir'] ?? env.COROLLA_DATA_DIR ?? path.join(os.homedir(), '.corolla', 'serve');
  return async (log) => {
    const { client, chainId } = await connect(rpcUrl);
    await expectContract(client, rewardPool, '--reward-pool', chainId);
    const schedule = await readEpochSchedule(client, rewardPool);
    const intervalMs = (seconds ?? 0) * 1000 || undefined;
    log(`metrics: signed every ${(intervalMs ?? 60_000) / 1000} s, sent to ${oracleUrl} (outbox in ${dataDir})`);
    return metricsReporting({ account, chainId, rewardPool, oracleUrl, epoch: { genesisMs: schedule.genesisMs, durationMs: schedule.epochDurationMs }, dataDir, ...(intervalMs ? { intervalMs } : {}) });
  };
}
