/**
 * Connection limits of every Corolla libp2p node, once. createSwarmNode applies them to libp2p's connection manager
 * and to our connection gater; `SwarmNodeOptions.connections` overrides any of them.
 */

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
