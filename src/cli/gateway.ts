/**
 * `corolla gateway`: the swarm's HTTP front door (Far Mesh API, OpenAI-compatible API, dashboard, chat, /metrics).
 * Every flag can also come from the environment (names below). Once listening, stdout gets exactly one line,
 * `ready <url>`; logs go to stderr. SIGINT/SIGTERM stop generations in flight (recorded as `stopped`) and exit.
 */
import path from 'node:path';
import type { Address } from 'viem';
import { isAddress } from 'viem/utils';
import { DEFAULT_GATEWAY_HOST, DEFAULT_GATEWAY_PORT, DEFAULT_PRICE_PER_TOKEN_FAR } from '../gateway/defaults.js';
import { openGateway, type OpenedGateway } from '../gateway/open.js';
import { parseFar } from '../gateway/ledger/money.js';
import type { ReceiptSettings } from '../gateway/receipts/sign.js';
import { loadPsk } from '../swarm/psk.js';
import { lineLogger } from '../util/logger.js';
import { accountFlags, accountFrom, accountUsage, type AccountFlagValues } from './account.js';
import { defaultGatewayDataDir, hubOptionsFromEnv } from './env.js';
import { UsageError } from './errors.js';
import { numberOption, parse } from './options.js';
import { terminalProgress } from './progress.js';


const usage = `usage: corolla gateway --bootstrap ADDR --model M [--model M2 …] [options]

Joins the swarm as a client holding each model's embeddings and LM head, and serves over HTTP:
  Far Mesh API     GET /health, /mesh/status, /models; POST /inference/generate (SSE, per-token cost)
  OpenAI API       GET /v1/models; POST /v1/chat/completions, /v1/completions (streaming or not)
  usage            GET /v1/usage/{request_id} (admin key); POST /v1/admin/keys/{id}/revoke (admin key)
  pages            /dashboard (live swarm view), /chat; GET /metrics for Prometheus
Prints "ready <url>" on stdout once listening. A model whose blocks are not all served yet answers 503 until they are.

  --bootstrap ADDRS        multiaddrs (with /p2p/<id>) of swarm peers, comma-separated or repeated
                           [env COROLLA_BOOTSTRAP, or FAR_MESH_DHT_BOOTSTRAP]
  --model M                a model file (GGUF, llama2.c .bin, HF directory or Hub id), as NAME=PATH to name it
                           (default name: the file name without extension); repeat for several models; the first
                           is the default [env COROLLA_MODELS, comma-separated]
  --port N                 HTTP port (default ${DEFAULT_GATEWAY_PORT}) [env PORT]
  --host H                 HTTP address (default ${DEFAULT_GATEWAY_HOST}; 0.0.0.0 for every interface) [env HOST]
  --database-url URL       PostgreSQL for the usage ledger (default: embedded PGlite in the data dir) [env DATABASE_URL]
  --redis-url URL          Redis for state shared by several gateways: rate limits, key revocations, live
                           sessions (default: in memory) [env REDIS_URL]
  --data-dir DIR           where the embedded ledger lives (default ~/.corolla/gateway) [env COROLLA_DATA_DIR]
  --price-per-token X      price of a generated token in FAR, a decimal (default ${DEFAULT_PRICE_PER_TOKEN_FAR}) [env PRICE_PER_TOKEN_FAR]
  --api-keys FILE          API keys (JSON, see README); without it the APIs are open, limited per client address
                           [env COROLLA_API_KEYS]
  --gateway-id NAME        this gateway's name in a shared ledger (default: from its peer id) [env COROLLA_GATEWAY_ID]
  --psk FILE               swarm key file of a private swarm [env COROLLA_PSK]
  --threads N              onnxruntime threads for the LM heads [env COROLLA_THREADS]

Receipts (all four or none): the gateway signs, as the payer, one receipt per server with a verified Ethereum
address per request, and sends them to the oracle (kept in the ledger until it has them):
  --chain-id N             the chain of the RewardPool [env COROLLA_CHAIN_ID]
  --reward-pool ADDRESS    the RewardPool the receipts are bound to [env COROLLA_REWARD_POOL]
  --oracle-url URL         the oracle's base URL [env COROLLA_ORACLE_URL]
${accountUsage}`;

const flags = {
  bootstrap: { type: 'string', multiple: true },
  model: { type: 'string', multiple: true },
  port: { type: 'string' },
  host: { type: 'string' },
  'database-url': { type: 'string' },
  'redis-url': { type: 'string' },
  'data-dir': { type: 'string' },
  'price-per-token': { type: 'string' },
  'api-keys': { type: 'string' },
  'gateway-id': { type: 'string' },
  psk: { type: 'string' },
  threads: { type: 'string' },
  'chain-id': { type: 'string' },
  'reward-pool': { type: 'string' },
  'oracle-url': { type: 'string' },
  ...accountFlags,
} as const;

/** `NAME=PATH` or `PATH` (named after the file). */
export function parseModelFlag(value: string): { name: string; path: string } {
  const eq = value.indexOf('=');
  if (eq > 0 && !value.slice(0, eq).includes('/')) return { name: value.slice(0, eq), path: value.slice(eq + 1) };
  const base = path.basename(value.replace(/\/+$/, ''));
  return { name: base.replace(/\.(gguf|bin)$/i, '') || value, path: value };
}

const list = (values: readonly string[] | undefined, env: string | undefined): string[] =>
  (values && values.length > 0 ? values : env ? [env] : []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0);

type ReceiptFlagValues = AccountFlagValues & { readonly 'chain-id'?: string; readonly 'reward-pool'?: string; readonly 'oracle-url'?: string };

/** The receipt settings the flags and `env` give: all four parts, or none (undefined). */
export async function receiptSettingsFrom(values: ReceiptFlagValues, env: Readonly<Record<string, string | undefined>>): Promise<ReceiptSettings | undefined> {
  const chainId = values['chain-id'] ?? env.COROLLA_CHAIN_ID;
  const rewardPool = values['reward-pool'] ?? env.COROLLA_REWARD_POOL;
  const oracleUrl = values['oracle-url'] ?? env.COROLLA_ORACLE_URL;
  const account = await accountFrom(values, env);
  const given = { 'an account (--private-key or --keystore)': account, '--chain-id': chainId, '--reward-pool': rewardPool, '--oracle-url': oracleUrl };
  const missing = Object.entries(given).filter(([, value]) => value === undefined || value === '').map(([name]) => name);
  if (missing.length === 4) return undefined;
  if (missing.length > 0) throw new UsageError(`receipts need an account, --chain-id, --reward-pool and --oracle-url together; missing: ${missing.join(', ')}`);
  if (!isAddress(rewardPool!, { strict: false })) throw new UsageError(`--reward-pool is not an Ethereum address: "${rewardPool}"`);
  try {
    new URL(oracleUrl!);
  } catch {
    throw new UsageError(`--oracle-url is not a URL: "${oracleUrl}"`);
  }
  return { account: account!, chainId: numberOption(chainId, 'chain-id', { integer: true, min: 1 })!, rewardPool: rewardPool as Address, oracleUrl: oracleUrl! };
}

export async function run(argv: string[]): Promise<void> {
  const env = process.env;
  const values = parse(argv, flags, usage) as { [K in keyof typeof flags]?: (typeof flags)[K] extends { multiple: true } ? string[] : string };
  const bootstrap = list(values.bootstrap, env.COROLLA_BOOTSTRAP ?? env.FAR_MESH_DHT_BOOTSTRAP);
  if (bootstrap.length === 0) throw new UsageError(`--bootstrap is required (or COROLLA_BOOTSTRAP)\n\n${usage}`);
  const models = list(values.model, env.COROLLA_MODELS).map(parseModelFlag);
  if (models.length === 0) throw new UsageError(`--model is required (or COROLLA_MODELS)\n\n${usage}`);
  const port = numberOption(values.port ?? env.PORT, 'port', { integer: true, min: 0, max: 65_535 }) ?? DEFAULT_GATEWAY_PORT;
  const host = values.host ?? env.HOST ?? DEFAULT_GATEWAY_HOST;
  const price = values['price-per-token'] ?? env.PRICE_PER_TOKEN_FAR ?? DEFAULT_PRICE_PER_TOKEN_FAR;
  try {
    parseFar(price);
  } catch (error) {
    throw new UsageError(`--price-per-token: ${(error as Error).message}`);
  }
  const threads = numberOption(values.threads ?? env.COROLLA_THREADS, 'threads', { integer: true, min: 1 });
  const pskFile = values.psk ?? env.COROLLA_PSK;
  // before minutes of model loading: a bad key, password or address fails now
  const receipts = await receiptSettingsFrom(values, env);

  const logger = lineLogger((line) => process.stderr.write(`[gateway ${new Date().toISOString()}] ${line}\n`));
  const log = logger.forComponent('corolla:gateway:cli');
  let signalled = false;
  let onStop: (() => void) | undefined;
  const stopRequested = new Promise<void>((resolve) => (onStop = resolve));
  const onSignal = (signal: string): void => {
    if (signalled) process.exit(130);
    signalled = true;
    log(`${signal}: stopping`);
    onStop?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let gateway: OpenedGateway | undefined;
  try {
    const databaseUrl = values['database-url'] ?? env.DATABASE_URL;
    const dataDir = values['data-dir'] ?? defaultGatewayDataDir(env);
    log(`ledger: ${databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${dataDir}`}; shared state: ${(values['redis-url'] ?? env.REDIS_URL) ? 'Redis' : 'in memory'}`);
    log(`loading ${models.map((m) => `${m.name} (${m.path})`).join(', ')}…`);
    gateway = await openGateway(
      {
        models,
        bootstrap,
        psk: pskFile ? await loadPsk(pskFile, { logger }) : undefined,
        databaseUrl,
        dataDir,
        redisUrl: values['redis-url'] ?? env.REDIS_URL,
        apiKeysFile: values['api-keys'] ?? env.COROLLA_API_KEYS,
        pricePerTokenFar: price,
        gatewayId: values['gateway-id'] ?? env.COROLLA_GATEWAY_ID,
        threads,
        hub: hubOptionsFromEnv(env),
        ...(receipts ? { receipts } : {}),
      },
      { logger, onProgress: terminalProgress() },
    );
    if (signalled) return;
    const url = await gateway.listen(port, host);
    for (const view of gateway.models.views()) log(`model ${view.name}: ${view.status}${view.reason ? ` (${view.reason})` : ''}, ${view.servers.length} server(s)`);
    const shown = url.replace('://0.0.0.0', '://127.0.0.1').replace('://[::]', '://127.0.0.1');
    log(`dashboard ${shown}/dashboard · chat ${shown}/chat · OpenAI base URL ${shown}/v1`);
    process.stdout.write(`ready ${url}\n`);
    await stopRequested;
  } finally {
    await gateway?.close().catch((error: unknown) => log(`stop failed: ${(error as Error)?.message ?? String(error)}`));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (signalled) log('stopped');
    setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  }
}
