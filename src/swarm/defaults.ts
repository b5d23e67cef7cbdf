/** Defaults of the swarm layer (DHT storage, provider sharding, connection limits), each with the reason for its value. */

export const DHT_STORE_DEFAULTS = {
  /** Records one peer may keep on us: its /corolla-peer key plus one /corolla key per model it serves. */
  maxRecordsPerPeer: 8,
  /** Record writes one peer may make per minute: refreshes every 30 s and load republishes at most every 5 s, on two keys, make 24. */
  putsPerPeerPerMinute: 30,
  /** Writes a peer may make at once (a restart re-puts everything it had). */
  putBurst: 10,
  /** Records kept in all (about 8 KiB each at most: 80 MiB worst case); past it, new owners are refused until some expire. */
  maxRecords: 10_000,
  /** Provider entries (CIDs) one peer may keep on us: a server provides two CIDs (model shard, index shard) per model. */
  maxProvidedPerPeer: 16,
  /** Provider entries kept in all. */
  maxProviderEntries: 50_000,
  /** How often expired records are swept out on writes (reads drop an expired record at once). */
  sweepIntervalMs: 60_000,
} as const;

export type DhtStoreLimits = { -readonly [K in keyof typeof DHT_STORE_DEFAULTS]: number };

// Connection limits of every Corolla libp2p node. createSwarmNode applies them to libp2p's connection manager and
// to our connection gater; `SwarmNodeOptions.connections` overrides any of them.

export interface ConnectionLimits {
  /** Connections libp2p keeps before it prunes (libp2p's own default is 300). */
  readonly maxConnections: number;
  /** Inbound connections still upgrading (noise, yamux) at once: a flood of half-open handshakes costs CPU. */
  readonly maxIncomingPendingConnections: number;
  /** New inbound connections per second from one host before libp2p refuses more (libp2p's rate limiter). */
  readonly inboundConnectionThreshold: number;
  /** Open inbound connections from one IP address at once (our gater). */
  readonly maxInboundConnectionsPerIp: number;
  /** Multiaddrs (ip prefixes as multiaddrs, e.g. /ip4/10.0.0.1) exempt from the limits above. */
  readonly allow: readonly string[];
  /** Multiaddrs never accepted. */
  readonly deny: readonly string[];
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = Object.freeze({
  // a server talks to its clients, the DHT's k-buckets and other servers: a few hundred is plenty, and each
  // connection costs a yamux session with up to 64 MiB of read buffer per stream
  maxConnections: 300,
  // libp2p's default of 10 is low for a bootstrap node that many processes dial at start; 32 keeps it bounded
  maxIncomingPendingConnections: 32,
  // libp2p's default: more new connections per second than this from one host is a flood, not a peer
  inboundConnectionThreshold: 5,
  // one host (or one NAT) may run a handful of nodes, not enough to fill maxConnections by itself
  maxInboundConnectionsPerIp: 64,
  allow: [],
  deny: [],
});

/** Limits of direct lanes (lanes.ts), each with the reason for its value. */
export interface LaneLimits {
  /** A ticket is used within this long or never: the dialer connects right after receiving it. */
  readonly ticketTtlMs: number;
  /** Tickets outstanding in all, and per peer (a client opens one lane per session and hop). */
  readonly maxTickets: number;
  readonly maxTicketsPerPeer: number;
  /** A TLS handshake must finish within this long, or the socket is dropped. */
  readonly handshakeTimeoutMs: number;
  /** Lane sockets at once, handshakes included (each then counts against the protocol's own per-peer quotas). */
  readonly maxConnections: number;
  /** Lane sockets from one IP at once, handshakes included: one host cannot take the whole listener. */
  readonly maxConnectionsPerIp: number;
  /** A dialer gives up on a lane (ticket and handshake) after this long and uses a libp2p stream. */
  readonly dialTimeoutMs: number;
  /** A peer whose lane failed is not asked again for this long. */
  readonly retryAfterMs: number;
  readonly maxRememberedFailures: number;
  /** TCP keep-alive on lane sockets, so a vanished peer's socket is noticed. */
  readonly keepAliveMs: number;
}

export const LANE_DEFAULTS: LaneLimits = Object.freeze({
  ticketTtlMs: 10_000,
  maxTickets: 1024,
  // a gateway may open a few hundred sessions at once through one server; the block protocol's stream quota is 256
  maxTicketsPerPeer: 256,
  handshakeTimeoutMs: 5_000,
  maxConnections: 4096,
  // the block protocol allows one peer 256 streams and one IP twice that
  maxConnectionsPerIp: 512,
  // on a LAN a lane opens in a few ms; a firewalled port must not hold a session's open for long
  dialTimeoutMs: 3_000,
  retryAfterMs: 5 * 60_000,
  maxRememberedFailures: 1024,
  keepAliveMs: 30_000,
});
