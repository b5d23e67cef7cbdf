/**
 * The libp2p node every Corolla process runs: TCP (or in-memory for tests), Noise, Yamux, identify, ping, and a
 * Kademlia DHT on our own protocol id with the Corolla record namespaces. Optionally a private swarm (pnet PSK).
 */
import '../util/polyfills.js'; // before libp2p
import { randomUUID } from 'node:crypto';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify, type Identify } from '@libp2p/identify';
import { ping, type Ping } from '@libp2p/ping';
import { bootstrap } from '@libp2p/bootstrap';
import { preSharedKey } from '@libp2p/pnet';
import {
  kadDHT,
  passthroughMapper,
  removePrivateAddressesMapper,
  type KadDHT,
  type SelectFn,
  type SingleKadDHT,
  type ValidateFn,
} from '@libp2p/kad-dht';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { AbortOptions, ConnectionGater, MultiaddrConnection, PrivateKey, Transport } from '@libp2p/interface';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './defaults.js';
import { SwarmConfigError, SwarmTimeoutError } from './errors.js';
import { dhtSelectors, dhtValidators } from './dht/validators.js';
import { DhtRecordStore } from './dht/store.js';
import type { DhtStoreLimits } from './defaults.js';
import { parsePsk } from './psk.js';
import { singleWriteEncrypter } from './single-write.js';
import { installLazyWindowUpdates } from './lazy-window-updates.js';
import { DirectLanes, type DirectLaneSettings } from './lanes.js';
import { ipOf, tcpIpOf } from './addresses.js';
import { SOFTWARE_NAME, SOFTWARE_VERSION } from '../version.js';
import { silentLogger, type ComponentLogger } from '../util/logger.js';
import { DHT_PROTOCOL } from '../wire/protocols.js';


export type SwarmTransport = 'tcp' | 'memory';

export type SwarmServices = {
  dht: KadDHT;
  identify: Identify;
  ping: Ping;
};

export type SwarmLibp2p = Libp2p<SwarmServices>;

export interface SwarmNodeOptions {
  /** Listen multiaddrs. Default: `/ip4/127.0.0.1/tcp/0` (tcp) or a fresh `/memory/<uuid>` (memory). */
  listen?: string[];
  /** Addresses to announce instead of the listen addresses (public IP behind NAT, DNS names). */
  announce?: string[];
  /** Full multiaddrs (with /p2p/<id>) of peers to join the swarm through. */
  bootstrap?: string[];
  /** The node's identity; a fresh Ed25519 key when omitted. */
  privateKey?: PrivateKey;
  /** Swarm key (file format of generatePsk); makes this a private swarm only key holders can join. */
  psk?: Uint8Array;
  /** 'tcp' (default) or 'memory' (tests; needs the @libp2p/memory dev dependency). */
  transport?: SwarmTransport;
  /** DHT protocol id; default DHT_PROTOCOL (`/corolla/kad/1.0.0`, kept apart from the public IPFS Amino DHT). */
  dhtProtocol?: string;
  /**
   * Which addresses the DHT keeps in peer records: 'all' (default; right for loopback and LANs) or 'public'
   * (drops private addresses, as on the open internet).
   */
  dhtAddresses?: 'all' | 'public';
  /** Extra kad-dht validators/selectors (merged over Corolla's), and the initial self-query interval (default 100 ms). */
  dht?: {
    validators?: Record<string, ValidateFn>;
    selectors?: Record<string, SelectFn>;
    initialQuerySelfInterval?: number;
    /** Quotas of the DHT record store (defaults.ts DHT_STORE_DEFAULTS). */
    store?: Partial<DhtStoreLimits>;
  };
  /**
   * Join the DHT as a client only (queries, no routing or storage duties). Clients that come and go must not
   * crowd the routing tables: a lookup would reach peers that never held the records. Default false.
   */
  dhtClientMode?: boolean;
  /** How long creation waits for the direct dials to the bootstrap peers (default 5000 ms). Failures are not fatal. */
  bootstrapTimeoutMs?: number;
  /** Connection-manager limits and the per-IP gater (defaults: DEFAULT_CONNECTION_LIMITS in defaults.ts). */
  connections?: Partial<ConnectionLimits>;
  /**
   * Direct lanes (lanes.ts): block steps on TLS sockets beside libp2p, where the peer offers them. Default on, on
   * the host of the first TCP listen address and any free port; false turns them off both ways (firewalls that
   * only pass the libp2p port). Not available on the memory transport.
   */
  lanes?: DirectLaneSettings | false;
  /** Diagnostics (component `corolla:swarm`); default silent. */
  logger?: ComponentLogger;
}

export interface SwarmNode {
  readonly libp2p: SwarmLibp2p;
  /** base58 peer id. */
  readonly peerId: string;
  readonly privateKey: PrivateKey;
  readonly transport: SwarmTransport;
  /** Dialable multiaddrs, each ending in /p2p/<peerId>. */
  readonly multiaddrs: string[];
  /** Number of peers in the DHT routing table. */
  readonly routingTableSize: number;
  /** What this node stores for the DHT (records with quotas and expiry, dht/store.ts). */
  readonly dhtStore: DhtRecordStore;
  /** Direct lanes to and from peers; undefined when turned off or on the memory transport. */
  readonly lanes: DirectLanes | undefined;
  /** Dials a full multiaddr (with /p2p/). */
  connect(address: string, options?: AbortOptions): Promise<void>;
  /** Resolves once the DHT routing table holds at least `count` peers; SwarmTimeoutError after `timeoutMs`. */
  waitForPeers(count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function parseAddress(address: string, what: string): Multiaddr {
  try {
    return multiaddr(address);
  } catch (cause) {
    throw new SwarmConfigError(`invalid ${what} multiaddr "${address}"`, { cause });
  }
}

function peerIdOf(address: Multiaddr): string | undefined {
  const components = address.getComponents().filter((component) => component.name === 'p2p');
  return components[components.length - 1]?.value;
}

const isMemoryAddress = (address: string): boolean => address.startsWith('/memory/');

async function loadTransport(kind: SwarmTransport): Promise<(components: any) => Transport> {
  if (kind === 'tcp') return tcp();
  try {
    const { memory } = await import('@libp2p/memory');
    return memory();
  } catch (cause) {
    throw new SwarmConfigError('the memory transport needs the @libp2p/memory package (a dev dependency)', { cause });
  }
}

/** Creates, starts and (best effort) bootstraps a swarm node. */
export async function createSwarmNode(options: SwarmNodeOptions = {}): Promise<SwarmNode> {
  const transport = options.transport ?? 'tcp';
  installLazyWindowUpdates();
  if (transport !== 'tcp' && transport !== 'memory') throw new SwarmConfigError(`unknown transport "${String(transport)}"`);
  const log = (options.logger ?? silentLogger).forComponent('corolla:swarm');
  const listen = options.listen ?? [transport === 'tcp' ? '/ip4/127.0.0.1/tcp/0' : `/memory/${randomUUID()}`];
  for (const address of listen) parseAddress(address, 'listen');
  for (const address of options.announce ?? []) parseAddress(address, 'announce');
  const bootstrapList = (options.bootstrap ?? []).map((address) => {
    const parsed = parseAddress(address, 'bootstrap');
    if (!peerIdOf(parsed)) throw new SwarmConfigError(`bootstrap address "${address}" lacks /p2p/<peer id>`);
    return address;
  });
  const psk = options.psk ? parsePsk(options.psk) : undefined;
  const privateKey = options.privateKey ?? (await generateKeyPair('Ed25519'));

  // @libp2p/bootstrap rejects /memory addresses; those are dialed directly below (every address is, once, so that
  // creation returns connected), and the bootstrap module keeps the rest tagged for the connection manager.
  const tcpBootstrap = bootstrapList.filter((address) => !isMemoryAddress(address));

  const dhtStore = new DhtRecordStore(options.dht?.store);
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...options.connections };
  let self: SwarmLibp2p | undefined;
  const gater = perIpGater(limits, () => self?.getConnections() ?? [], log);

  const libp2p = await createLibp2p({
    privateKey,
    start: false,
    // kad-dht keeps records and provider entries here; the store enforces per-peer quotas and record expiry
    datastore: dhtStore,
    addresses: { listen, ...(options.announce ? { announce: options.announce } : {}) },
    transports: [await loadTransport(transport)],
    connectionEncrypters: [singleWriteEncrypter(noise())],
    streamMuxers: [
      yamux({
        streamOptions: {
          // hidden states for long prompts are tens of MiB; the 4 MiB default would reset such streams
          maxReadBufferLength: 64 * 1024 * 1024,
          maxStreamWindowSize: 16 * 1024 * 1024,
          inactivityTimeout: 10 * 60_000,
        },
      }),
    ],
    connectionManager: {
      maxConnections: limits.maxConnections,
      maxIncomingPendingConnections: limits.maxIncomingPendingConnections,
      inboundConnectionThreshold: limits.inboundConnectionThreshold,
      allow: [...limits.allow],
      deny: [...limits.deny],
    },
    connectionGater: gater,
    ...(psk ? { connectionProtector: preSharedKey({ psk }) } : {}),
    // A busy server blocks its event loop during engine calls; a late ping there is not a dead peer. Dead peers are
    // found by the requests that fail on them (and the client bans them), not by aborting connections on a ping.
    connectionMonitor: { abortConnectionOnPingFailure: false },
    peerDiscovery: tcpBootstrap.length > 0 ? [bootstrap({ list: tcpBootstrap, timeout: 50 })] : [],
    nodeInfo: { name: SOFTWARE_NAME, version: SOFTWARE_VERSION, userAgent: `${SOFTWARE_NAME}/${SOFTWARE_VERSION} node/${process.versions.node}` },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: options.dhtProtocol ?? DHT_PROTOCOL,
        clientMode: options.dhtClientMode ?? false,
        peerInfoMapper: options.dhtAddresses === 'public' ? removePrivateAddressesMapper : passthroughMapper,
        initialQuerySelfInterval: options.dht?.initialQuerySelfInterval ?? 100,
        validators: { ...dhtValidators, ...options.dht?.validators },
        selectors: { ...dhtSelectors, ...options.dht?.selectors },
        // Provider records expire after 30 min on storing peers and are re-provided 10 min before that, so departed
        // servers fall out of findProviders within the hour (the default is 48 h).
        reprovide: { validity: 30 * 60_000, threshold: 10 * 60_000, interval: 5 * 60_000 },
      }),
    },
  });
  self = libp2p;
  await libp2p.start();

  const peerId = libp2p.peerId.toString();
  // lanes listen on the host of the first TCP listen address (0.0.0.0 when that listens on every interface)
  const laneHost = listen.map((address) => tcpIpOf(multiaddr(address))).find((ip) => ip !== undefined);
  const lanes = transport === 'tcp' && options.lanes !== false ? new DirectLanes(libp2p, { host: laneHost, ...options.lanes }, options.logger) : undefined;
  const node: SwarmNode = {
    libp2p,
    peerId,
    privateKey,
    transport,
    dhtStore,
    lanes,
    get multiaddrs() {
      return libp2p.getMultiaddrs().map((address) => {
        const text = address.toString();
        return peerIdOf(address) ? text : `${text}/p2p/${peerId}`;
      });
    },
    get routingTableSize() {
      return (libp2p.services.dht as unknown as SingleKadDHT).routingTable?.size ?? 0;
    },
    async connect(address, connectOptions) {
      await libp2p.dial(parseAddress(address, 'dial'), connectOptions);
    },
    async waitForPeers(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (node.routingTableSize < count) {
        if (Date.now() > deadline) {
          throw new SwarmTimeoutError(`DHT routing table of ${peerId} has ${node.routingTableSize} peers after ${timeoutMs} ms, wanted ${count}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      clearInterval(redial);
      await lanes?.stop();
      await libp2p.stop();
    },
  };

  const targets = bootstrapList.filter((address) => peerIdOf(multiaddr(address)) !== peerId);
  const dialBootstrap = async (timeoutMs: number) => {
    const signal = AbortSignal.timeout(timeoutMs);
    const results = await Promise.allSettled(targets.map((address) => libp2p.dial(multiaddr(address), { signal })));
    results.forEach((result, i) => {
      if (result.status === 'rejected') log(`bootstrap dial to ${targets[i]} failed: ${(result.reason as Error)?.message ?? String(result.reason)}`);
    });
  };
  if (targets.length > 0) await dialBootstrap(options.bootstrapTimeoutMs ?? 5000);
  // A node left with no connections (a bootstrap dial that timed out under load, or every peer gone) would never
  // find anyone again: keep redialing the bootstrap peers while that lasts.
  let redialing = false;
  const redial = setInterval(() => {
    if (redialing || targets.length === 0 || libp2p.getConnections().length > 0) return;
    redialing = true;
    void dialBootstrap(5000).finally(() => (redialing = false));
  }, 2000);
  redial.unref();
  return node;
}

/**
 * Refuses an inbound connection when its IP already holds `maxInboundConnectionsPerIp` inbound connections (addresses
 * on the allow list excepted), before any handshake work is spent on it.
 */
function perIpGater(limits: ConnectionLimits, connections: () => readonly { direction: string; remoteAddr: Multiaddr }[], log: (line: string) => void): ConnectionGater {
  const allowed = new Set(limits.allow.map((address) => ipOf(parseAddress(address, 'allow'))).filter((ip) => ip !== undefined));
  return {
    denyInboundConnection(maConn: MultiaddrConnection): boolean {
      const ip = ipOf(maConn.remoteAddr);
      if (ip === undefined || allowed.has(ip)) return false;
      const held = connections().filter((connection) => connection.direction === 'inbound' && ipOf(connection.remoteAddr) === ip).length;
      if (held < limits.maxInboundConnectionsPerIp) return false;
      log(`refused an inbound connection from ${ip}: it holds ${held} (limit ${limits.maxInboundConnectionsPerIp})`);
      return true;
    },
  };
}
