/**
 * `corolla serve`: hosts a span of a model's blocks for the swarm. Once the server is announced ONLINE, stdout gets
 * exactly one line, `ready <peerId> <start>:<end>`; every log line and the loading progress go to stderr.
 * SIGINT/SIGTERM announce OFFLINE, close the streams, stop the node and exit 0.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openModel } from '../model/load.js';
import { createBlockServer, type BlockServer } from '../server/block-server.js';
import {
  DEFAULT_BATCH_WINDOW_MS,
  DEFAULT_CACHE_BUDGET_BYTES,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_PEER_BYTES_IN_FLIGHT,
  DEFAULT_MAX_SESSION_MS,
  DEFAULT_MAX_SESSIONS_PER_PEER,
  DEFAULT_MAX_STREAMS_PER_PEER,
  DEFAULT_MIN_SESSION_RATE,
  DEFAULT_NETWORK_BPS,
  DEFAULT_PEER_CACHE_SHARE,
  DEFAULT_SLOW_SESSION_GRACE_MS,
  DEFAULT_REBALANCE_INTERVAL_MS,
  DEFAULT_THREADS,
} from '../server/defaults.js';
import { GENERATE_PROTOCOL } from '../server/generate-protocol.js';
import { rebalancing, wholeModelGeneration, type ServiceFactories, type ServiceMap } from '../server/services/index.js';
import { loadOrCreateIdentity } from '../swarm/identity.js';
import { modelIdOf } from '../swarm/model-id.js';
import { DEFAULT_CONNECTION_LIMITS } from '../swarm/defaults.js';
import { createSwarmNode, type SwarmNode } from '../swarm/node.js';
import { loadPsk } from '../swarm/psk.js';
import type { BlockRange } from '../util/blocks.js';
import { lineLogger } from '../util/logger.js';
import { accountFlags, accountFrom, accountUsage } from './account.js';
import { UsageError } from './errors.js';
import { kvCacheOption, numberOption, parse } from './options.js';
import { terminalProgress } from './progress.js';
import { checkRegistration } from './registration.js';
import { autoClaimFlags, autoClaimFrom, autoClaimUsage } from './auto-claim.js';
import { ADDRESS } from './chain.js';
import { metricsSettingsFrom } from './serve-metrics.js';
import { DEFAULT_METRICS_INTERVAL_MS, METRICS_OUTBOX_FILE } from '../server/services/metrics.js';

const DEFAULT_LISTEN = '/ip4/127.0.0.1/tcp/0';
const seconds = (ms: number) => ms / 1000;

const usage = `usage: corolla serve --model <path|hf-repo> [options]

Serves a span of the model's transformer blocks to the swarm. Prints "ready <peer id> <start>:<end>" on stdout once
announced ONLINE; logs go to stderr. SIGINT/SIGTERM announce OFFLINE and exit.

  --model M              GGUF file, llama2.c .bin, Hugging Face directory, or Hub repo id
  --tokenizer PATH       tokenizer for llama2.c checkpoints (whole-model mode uses its EOS ids)
  --blocks START:END     serve blocks [START, END); "all" serves the whole model with head and tail, and
                         answers ${GENERATE_PROTOCOL} (whole-model generation)
  --num-blocks N         serve N blocks, placed where the swarm is weakest (default: as many as fit in free
                         memory); the span is reconsidered every --rebalance-interval
  --bootstrap ADDRS      comma-separated multiaddrs (with /p2p/<id>) of swarm peers (repeatable)
  --listen MULTIADDR     listen address (repeatable; default ${DEFAULT_LISTEN} — use /ip4/0.0.0.0/tcp/PORT
                         to accept peers from other machines)
  --announce MULTIADDR   address to advertise instead of the listen addresses (repeatable)
  --lane-port N          TCP port for direct lanes: block steps on TLS (pre-shared key from the libp2p connection)
                         beside libp2p, much cheaper per step (default: any free port, on the first listen host)
  --lane-announce-port N the port peers dial for lanes, when a NAT or proxy forwards it to --lane-port
  --no-lanes             no direct lanes: every step on libp2p streams (only the libp2p port reaches this host)
  --identity FILE        Ed25519 key file, created when missing (a stable peer id across restarts)
  --psk FILE             swarm key file: join a private swarm
  --public-name S        a name shown in swarm listings
  --location S           free-form location shown in swarm listings
  --eth-address 0x…      address for rewards, announced unbound (readers do not pay it): prefer an account below
  --registry ADDRESS     AgentRegistry to check on start that the account is registered and active
                         [env COROLLA_REGISTRY]; needs --rpc-url URL [env COROLLA_RPC_URL]
  --register             register the account (name: --public-name or the peer id) when it is not registered
${autoClaimUsage}
  --send-metrics         sign this server's metrics (tokens, step time, uptime) every --metrics-interval S (default
                         ${DEFAULT_METRICS_INTERVAL_MS / 1000}) and send them to --oracle-url; kept in <data-dir>/${METRICS_OUTBOX_FILE} until the
                         oracle answers. Needs an account, --rpc-url and --reward-pool
  --data-dir DIR         where the metrics outbox lives (default ~/.corolla/serve) [env COROLLA_DATA_DIR]
  --max-cache-tokens N   KV-cache budget in tokens over all sessions (default: ${DEFAULT_CACHE_BUDGET_BYTES / 1024 ** 3} GiB worth)
  --threads N            onnxruntime threads (default ${DEFAULT_THREADS})
  --kv-cache f32|f16     KV cache element type (default f32; f16 halves its memory and speeds up long contexts,
                         and is announced, so spot-checks compare it only with servers like it)
  --max-batch N          decode steps of different sessions per engine call (default ${DEFAULT_MAX_BATCH}; 1 = no batching)
  --batch-window MS      longest wait for other sessions' decode steps before a partial batch (default ${DEFAULT_BATCH_WINDOW_MS})
  --idle-timeout S       close sessions idle for S seconds (default ${seconds(DEFAULT_IDLE_TIMEOUT_MS)})
  --max-session-time S   close sessions open longer than S seconds (default ${seconds(DEFAULT_MAX_SESSION_MS)})
  --max-sessions-per-peer N   sessions one peer may hold (default ${DEFAULT_MAX_SESSIONS_PER_PEER}; an IP gets 2×)
  --max-streams-per-peer N    block-protocol streams one peer may hold open (default ${DEFAULT_MAX_STREAMS_PER_PEER}; an IP gets 2×)
  --peer-cache-share F   share of the KV budget one peer may reserve while others use the server, in (0, 1]
                         (default ${DEFAULT_PEER_CACHE_SHARE}; a peer alone may borrow more, and loses it when others need room)
  --max-peer-mib-in-flight N  MiB of requests one peer may have in flight (default ${DEFAULT_MAX_PEER_BYTES_IN_FLIGHT / 2 ** 20})
  --min-session-rate R   cached tokens per second a session must average after --slow-session-grace (default ${DEFAULT_MIN_SESSION_RATE})
  --slow-session-grace S seconds before --min-session-rate applies (default ${seconds(DEFAULT_SLOW_SESSION_GRACE_MS)})
  --max-connections N    libp2p connections kept (default ${DEFAULT_CONNECTION_LIMITS.maxConnections})
  --max-connections-per-ip N  inbound connections from one IP address (default ${DEFAULT_CONNECTION_LIMITS.maxInboundConnectionsPerIp})
  --rebalance-interval S seconds between span checks with --num-blocks or no --blocks (default ${seconds(DEFAULT_REBALANCE_INTERVAL_MS)}; 0 = off)
  --network-mbps N       link bandwidth for the announced network throughput estimate (default ${DEFAULT_NETWORK_BPS / 1e6})
  --stats-interval S     every S seconds log "stats max_event_loop_delay_ms=… rss_mb=…" (longest event-loop stall
                         in that interval; off by default)

${accountUsage}
The account's address is announced with a binding to the peer id signed by its key; only the address is logged.`;

const flags = {
  model: { type: 'string' },
  tokenizer: { type: 'string' },
  blocks: { type: 'string' },
  'num-blocks': { type: 'string' },
  bootstrap: { type: 'string', multiple: true },
  listen: { type: 'string', multiple: true },
  announce: { type: 'string', multiple: true },
  'lane-port': { type: 'string' },
  'lane-announce-port': { type: 'string' },
  'no-lanes': { type: 'boolean' },
  identity: { type: 'string' },
  psk: { type: 'string' },
  'public-name': { type: 'string' },
  location: { type: 'string' },
  'eth-address': { type: 'string' },
  'max-cache-tokens': { type: 'string' },
  threads: { type: 'string' },
  'kv-cache': { type: 'string' },
  'max-batch': { type: 'string' },
  'batch-window': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'max-session-time': { type: 'string' },
  'rebalance-interval': { type: 'string' },
  'max-sessions-per-peer': { type: 'string' },
  'max-streams-per-peer': { type: 'string' },
  'peer-cache-share': { type: 'string' },
  'max-peer-mib-in-flight': { type: 'string' },
  'min-session-rate': { type: 'string' },
  'slow-session-grace': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-connections-per-ip': { type: 'string' },
  'network-mbps': { type: 'string' },
  'stats-interval': { type: 'string' },
  registry: { type: 'string' },
  'rpc-url': { type: 'string' },
  register: { type: 'boolean' },
  ...autoClaimFlags,
  'send-metrics': { type: 'boolean' },
  'metrics-interval': { type: 'string' },
  'data-dir': { type: 'string' },
  ...accountFlags,
} as const;

/** Parses `--blocks`: "all" or "START:END". */
export function parseBlocks(value: string): BlockRange | 'all' {
  if (value === 'all') return 'all';
  const match = /^(\d{1,6}):(\d{1,6})$/.exec(value);
  if (!match) throw new UsageError(`--blocks must be START:END (e.g. 0:12) or "all", got "${value}"`);
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (start >= end) throw new UsageError(`--blocks ${value} is empty: START must be less than END`);
  return { start, end };
}

export async function run(argv: string[]): Promise<void> {
  const values = parse(argv, flags, usage) as Record<string, unknown> & {
    [K in keyof typeof flags]?: (typeof flags)[K] extends { multiple: true } ? string[] : (typeof flags)[K] extends { type: 'boolean' } ? boolean : string;
  };
  if (!values.model) throw new UsageError(`--model is required\n\n${usage}`);
  if (values.blocks !== undefined && values['num-blocks'] !== undefined) throw new UsageError('give either --blocks or --num-blocks, not both');
  const range = values.blocks !== undefined ? parseBlocks(values.blocks) : undefined;
  const numBlocks = numberOption(values['num-blocks'], 'num-blocks', { integer: true, min: 1 });
  const maxCacheTokens = numberOption(values['max-cache-tokens'], 'max-cache-tokens', { integer: true, min: 1 });
  const threads = numberOption(values.threads, 'threads', { integer: true, min: 1 });
  const kvCacheType = kvCacheOption(values['kv-cache']);
  const maxBatch = numberOption(values['max-batch'], 'max-batch', { integer: true, min: 1, max: 256 });
  const batchWindowMs = numberOption(values['batch-window'], 'batch-window', { min: 0, max: 1000 });
  const idleTimeout = numberOption(values['idle-timeout'], 'idle-timeout', { min: 0.1 });
  const maxSessionTime = numberOption(values['max-session-time'], 'max-session-time', { min: 1 });
  const rebalanceInterval = numberOption(values['rebalance-interval'], 'rebalance-interval', { min: 0 });
  const networkMbps = numberOption(values['network-mbps'], 'network-mbps', { min: 0.001 });
  const statsInterval = numberOption(values['stats-interval'], 'stats-interval', { min: 0.1 });
  const maxSessionsPerPeer = numberOption(values['max-sessions-per-peer'], 'max-sessions-per-peer', { integer: true, min: 1 });
  const maxStreamsPerPeer = numberOption(values['max-streams-per-peer'], 'max-streams-per-peer', { integer: true, min: 1, max: 65_536 });
  const peerCacheShare = numberOption(values['peer-cache-share'], 'peer-cache-share', { min: 0.001, max: 1 });
  const maxPeerMib = numberOption(values['max-peer-mib-in-flight'], 'max-peer-mib-in-flight', { min: 1 });
  const minSessionRate = numberOption(values['min-session-rate'], 'min-session-rate', { min: 0 });
  const slowSessionGrace = numberOption(values['slow-session-grace'], 'slow-session-grace', { min: 0.1 });
  const maxConnections = numberOption(values['max-connections'], 'max-connections', { integer: true, min: 1 });
  const lanePort = numberOption(values['lane-port'], 'lane-port', { integer: true, min: 0, max: 65_535 });
  const laneAnnouncePort = numberOption(values['lane-announce-port'], 'lane-announce-port', { integer: true, min: 1, max: 65_535 });
  const maxConnectionsPerIp = numberOption(values['max-connections-per-ip'], 'max-connections-per-ip', { integer: true, min: 1 });
  if (values['eth-address'] !== undefined && !ADDRESS.test(values['eth-address'])) {
    throw new UsageError(`--eth-address must be 0x followed by 40 hex digits, got "${values['eth-address']}"`);
  }
  const bootstrap = (values.bootstrap ?? []).flatMap((list) => list.split(',')).map((a) => a.trim()).filter((a) => a.length > 0);

  const write = (line: string): void => {
    process.stderr.write(`[serve ${new Date().toISOString()}] ${line}\n`);
  };
  const logger = lineLogger(write);
  const log = logger.forComponent('corolla:serve');

  // the account first: a bad key or password fails before minutes of model loading
  const ethAccount = await accountFrom(values);
  if (ethAccount) log(`Ethereum account ${ethAccount.address}`);
  if (ethAccount && values['eth-address'] !== undefined && values['eth-address'].toLowerCase() !== ethAccount.address.toLowerCase()) {
    throw new UsageError(`--eth-address ${values['eth-address']} is not the address of the given account (${ethAccount.address})`);
  }
  const registry = values.registry ?? (process.env.COROLLA_REGISTRY || undefined);
  if (registry !== undefined && !ethAccount) throw new UsageError('--registry needs an Ethereum account (--private-key, COROLLA_PRIVATE_KEY or --keystore)');
  const autoClaim = autoClaimFrom(values, ethAccount);
  const sendMetrics = metricsSettingsFrom(values, ethAccount);

  // Signals: the first one stops cleanly (even mid-load); a second one exits at once.
  let signalled: string | undefined;
  let onStop: ((signal: string) => void) | undefined;
  const stopRequested = new Promise<string>((resolve) => (onStop = resolve));
  const onSignal = (signal: string): void => {
    if (signalled) {
      log(`${signal} again: exiting now`);
      process.exit(130);
    }
    signalled = signal;
    log(`${signal}: stopping`);
    onStop?.(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // --stats-interval: the longest event-loop stall (and RSS) per interval, for the soak and for operators
  const loopDelay = statsInterval !== undefined ? monitorEventLoopDelay({ resolution: 10 }) : undefined;
  loopDelay?.enable();
  const statsTimer = loopDelay
    ? setInterval(() => {
        log(`stats max_event_loop_delay_ms=${(loopDelay.max / 1e6).toFixed(1)} rss_mb=${(process.memoryUsage().rss / 2 ** 20).toFixed(1)}`);
        loopDelay.reset();
      }, statsInterval! * 1000).unref()
    : undefined;

  const source = await openModel(values.model, { tokenizerPath: values.tokenizer });
  let node: SwarmNode | undefined;
  let server: BlockServer | undefined;
  let stopAutoClaim: (() => void) | undefined;
  try {
    const modelId = await modelIdOf(source);
    log(`model ${modelId}: ${source.config.numLayers} blocks, hidden ${source.config.hiddenSize}`);
    const identity = values.identity ? await loadOrCreateIdentity(values.identity, { logger }) : undefined;
    if (identity) log(`${identity.created ? 'created new' : 'loaded'} identity ${identity.peerId} (${values.identity})`);
    const psk = values.psk ? await loadPsk(values.psk, { logger }) : undefined;

    node = await createSwarmNode({
      listen: values.listen ?? [DEFAULT_LISTEN],
      announce: values.announce,
      bootstrap,
      privateKey: identity?.privateKey,
      psk,
      logger,
      lanes: values['no-lanes'] ? false : { ...(lanePort !== undefined ? { port: lanePort } : {}), ...(laneAnnouncePort !== undefined ? { announcePort: laneAnnouncePort } : {}) },
      connections: {
        ...(maxConnections !== undefined ? { maxConnections } : {}),
        ...(maxConnectionsPerIp !== undefined ? { maxInboundConnectionsPerIp: maxConnectionsPerIp } : {}),
      },
    });
    log(`peer ${node.peerId} listening on:\n  ${node.multiaddrs.join('\n  ')}`);
    if (bootstrap.length > 0) {
      await node.waitForPeers(1, 10_000).catch(() => log('no DHT peers yet; announcing locally and retrying in the background'));
    }
    if (signalled) return;
    if (ethAccount) {
      const rpcUrl = values['rpc-url'] ?? (process.env.COROLLA_RPC_URL || undefined);
      await checkRegistration(ethAccount, { registry, rpcUrl, register: values.register, name: values['public-name'] ?? node.peerId, peerId: node.peerId }, log);
    }

    // --blocks all serves whole-model generation; an auto-placed span is reconsidered every --rebalance-interval
    const services: ServiceFactories<ServiceMap> = {
      ...(range === 'all'
        ? { generation: wholeModelGeneration() }
        : range === undefined
          ? { rebalancing: rebalancing(rebalanceInterval !== undefined ? { intervalMs: rebalanceInterval * 1000 } : {}) }
          : {}),
      ...(sendMetrics ? { metrics: await sendMetrics(log) } : {}),
    };
    server = await createBlockServer(
      { node, source, logger, onProgress: terminalProgress(), ...(ethAccount ? { ethAccount } : {}) },
      {
        modelId,
        range,
        numBlocks,
        threads,
        kvCacheType,
        maxBatch,
        batchWindowMs,
        maxCacheTokens,
        publicName: values['public-name'],
        location: values.location,
        ethAddress: values['eth-address'],
        ...(idleTimeout !== undefined ? { idleTimeoutMs: idleTimeout * 1000 } : {}),
        ...(maxSessionTime !== undefined ? { maxSessionMs: maxSessionTime * 1000 } : {}),
        ...(networkMbps !== undefined ? { networkBitsPerSecond: networkMbps * 1e6 } : {}),
        maxSessionsPerPeer,
        maxStreamsPerPeer,
        peerCacheShare,
        ...(maxPeerMib !== undefined ? { maxPeerBytesInFlight: Math.round(maxPeerMib * 2 ** 20) } : {}),
        minSessionRate,
        ...(slowSessionGrace !== undefined ? { slowSessionGraceMs: slowSessionGrace * 1000 } : {}),
        services,
      },
    );
    if (!signalled) {
      const { start, end } = server.range;
      process.stdout.write(`ready ${node.peerId} ${start}:${end}\n`);
      stopAutoClaim = await autoClaim?.start(log);
      log(`serving ${modelId} blocks [${start}, ${end})${server.wholeModel ? ` (whole model: ${GENERATE_PROTOCOL})` : ''}; throughput ${JSON.stringify(server.throughput)}`);
    }
    await stopRequested;
  } finally {
    stopAutoClaim?.();
    await server?.stop().catch((error: unknown) => log(`stop failed: ${(error as Error)?.message ?? String(error)}`));
    await node?.stop().catch(() => {});
    source.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    clearInterval(statsTimer);
    loopDelay?.disable();
    if (signalled) log('stopped');
    // libp2p can leave a stray handle behind; never let that keep a stopped process alive.
    setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  }
}
