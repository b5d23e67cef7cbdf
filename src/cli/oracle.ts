/**
 * `corolla oracle`: the incentive oracle's HTTP service. Takes signed receipts and metrics, closes each epoch once it
 * has ended (and its grace for late receipts has passed) and reports its Merkle root to the RewardPool.
 * Prints `ready <url>` on stdout once listening; logs go to stderr.
 */
import os from 'node:os';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { createPublicClient, createWalletClient, http, isAddress, type Address, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createOracleApp } from '../oracle/app.js';
import { readEpochSchedule, viemRegistryReader, viemRegistrySlasher, viemRewardPoolWriter } from '../oracle/chain.js';
import { DEFAULT_CLOSE_GRACE_MS, DEFAULT_CLOSE_INTERVAL_MS, DEFAULT_ORACLE_HOST, DEFAULT_ORACLE_PORT } from '../oracle/defaults.js';
import { openOracleStore } from '../oracle/open.js';
import { OracleService } from '../oracle/service.js';
import { lineLogger } from '../util/logger.js';
import { UsageError } from './errors.js';
import { numberOption, parse } from './options.js';

const usage = `usage: corolla oracle --rpc-url URL --registry ADDR --pool ADDR --payers 0xA,0xB [options]

  --rpc-url URL           the chain's JSON-RPC endpoint [env COROLLA_RPC_URL]
  --registry ADDR         the AgentRegistry [env COROLLA_REGISTRY]
  --pool ADDR             the RewardPool (also the EIP-712 verifyingContract) [env COROLLA_REWARD_POOL]
  --oracle-key KEY        the key holding ORACLE_ROLE (never printed) [env COROLLA_PRIVATE_KEY]
  --payers LIST           gateway/client addresses whose receipts count, comma-separated [env COROLLA_PAYERS]
  --close-grace S         seconds after an epoch ends that late receipts are still taken before it closes
                          (default ${DEFAULT_CLOSE_GRACE_MS / 1000}) [env COROLLA_CLOSE_GRACE]
  --close-interval S      how often to look for epochs to close (default ${DEFAULT_CLOSE_INTERVAL_MS / 1000}) [env COROLLA_CLOSE_INTERVAL]
  --database-url URL      PostgreSQL (default: embedded PGlite in the data dir) [env DATABASE_URL]
  --data-dir DIR          where the embedded store lives (default ~/.corolla/oracle) [env COROLLA_DATA_DIR]
  --port N                HTTP port (default ${DEFAULT_ORACLE_PORT}) [env PORT]
  --host H                HTTP address (default ${DEFAULT_ORACLE_HOST}) [env HOST]
  --slash                 slash servers caught by spot-checks (the key must hold the registry's VERIFIER_ROLE);
                          without it the evidence is kept for the admin [env COROLLA_SLASH=1]`;

const flags = {
  'rpc-url': { type: 'string' },
  registry: { type: 'string' },
  pool: { type: 'string' },
  'oracle-key': { type: 'string' },
  payers: { type: 'string' },
  'close-grace': { type: 'string' },
  'close-interval': { type: 'string' },
  'database-url': { type: 'string' },
  'data-dir': { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  slash: { type: 'boolean' },
} as const;

function address(value: string | undefined, name: string): Address {
  if (!value) throw new UsageError(`--${name} is required\n\n${usage}`);
  if (!isAddress(value, { strict: false })) throw new UsageError(`--${name} is not an Ethereum address: "${value}"`);
  return value;
}

export async function run(argv: string[]): Promise<void> {
  const env = process.env;
  const values = parse(argv, flags, usage);
  const rpcUrl = values['rpc-url'] ?? env.COROLLA_RPC_URL;
  if (!rpcUrl) throw new UsageError(`--rpc-url is required\n\n${usage}`);
  const registry = address(values.registry ?? env.COROLLA_REGISTRY, 'registry');
  const pool = address(values.pool ?? env.COROLLA_REWARD_POOL, 'pool');
  const key = values['oracle-key'] ?? env.COROLLA_PRIVATE_KEY;
  if (!key || !/^0x[0-9a-fA-F]{64}$/.test(key)) throw new UsageError('--oracle-key (or COROLLA_PRIVATE_KEY) must be a 32-byte hex private key');
  const payers = (values.payers ?? env.COROLLA_PAYERS ?? '').split(',').map((p) => p.trim()).filter(Boolean).map((p) => address(p, 'payers'));
  if (payers.length === 0) throw new UsageError(`--payers is required: without payers no receipt counts\n\n${usage}`);
  const closeGraceMs = (numberOption(values['close-grace'] ?? env.COROLLA_CLOSE_GRACE, 'close-grace', { min: 0 }) ?? DEFAULT_CLOSE_GRACE_MS / 1000) * 1000;
  const closeIntervalMs = (numberOption(values['close-interval'] ?? env.COROLLA_CLOSE_INTERVAL, 'close-interval', { min: 0.1 }) ?? DEFAULT_CLOSE_INTERVAL_MS / 1000) * 1000;
  const port = numberOption(values.port ?? env.PORT, 'port', { integer: true, min: 0, max: 65_535 }) ?? DEFAULT_ORACLE_PORT;
  const host = values.host ?? env.HOST ?? DEFAULT_ORACLE_HOST;

  const logger = lineLogger((line) => process.stderr.write(`[oracle ${new Date().toISOString()}] ${line}\n`));
  const log = logger.forComponent('corolla:oracle:cli');
  const account = privateKeyToAccount(key as Hex);
  const client = createPublicClient({ transport: http(rpcUrl) });
  const chainId = await client.getChainId();
  // the schedule is the pool's own (immutable there), never a setting that could disagree with it
  const schedule = await readEpochSchedule(client, pool);
  const wallet = createWalletClient({ account, transport: http(rpcUrl) });
  const store = await openOracleStore({ databaseUrl: values['database-url'] ?? env.DATABASE_URL, dataDir: values['data-dir'] ?? env.COROLLA_DATA_DIR ?? path.join(os.homedir(), '.corolla', 'oracle'), cacheRoot: env.COROLLA_CACHE || undefined, logger });
  const service = new OracleService(
    { chainId, rewardPool: pool, payers, ...schedule, closeGraceMs },
    {
      store,
      registry: viemRegistryReader(client, registry),
      pool: viemRewardPoolWriter(client, wallet, pool),
      ...(values.slash || env.COROLLA_SLASH === '1' ? { slasher: viemRegistrySlasher(client, wallet, registry) } : {}),
      logger,
    },
  );
  const server = serve({ fetch: createOracleApp(service, { logger }).fetch, port, hostname: host });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const bound = server.address();
  const url = `http://${host}:${typeof bound === 'object' && bound ? bound.port : port}`;
  log(`oracle ${account.address} on chain ${chainId}; pool ${pool} (epochs of ${schedule.epochDurationMs / 1000} s from ${new Date(schedule.genesisMs).toISOString()}); registry ${registry}; ${payers.length} payer(s)`);
  const timer = setInterval(() => void service.closeDueEpochs(), closeIntervalMs);
  process.stdout.write(`ready ${url}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(timer);
  server.close();
  await store.close();
  log('stopped');
}
