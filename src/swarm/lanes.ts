/**
 * Direct lanes: a protocol's streams carried on a plain TLS socket beside the libp2p connection.
 *
 * A libp2p stream costs each message noise encryption and yamux framing in JavaScript, several writes and wake-ups,
 * and window bookkeeping: on two loopback processes about 1.5 ms per round trip, where a TLS socket costs 0.12 ms
 * (bench/hop-probe.ts). Block steps are small and strictly sequential, so that difference is most of what a hop
 * costs. A lane keeps libp2p for what it is good at (finding, dialing and authenticating the peer) and moves only
 * the step traffic:
 *
 *   1. The dialer asks the peer, over `/corolla/lane/1.0.0` on the authenticated, encrypted libp2p connection, for a
 *      ticket for one protocol. The peer answers with its lane port, a random identity and a random 32-byte key,
 *      bound to the dialer's peer id, valid once and for a few seconds.
 *   2. The dialer opens TLS 1.2 (ECDHE-PSK, ChaCha20-Poly1305) to that port on the IP its libp2p connection reached,
 *      with the ticket's identity and key, from the IP it asked from (the listener drops connections from IPs that
 *      hold no ticket before any TLS work, so strangers cannot make it compute). Only the two ends of that libp2p
 *      connection know the key, so the TLS handshake authenticates both to each other; ECDHE gives the session
 *      forward secrecy.
 *   3. The listener hands the socket to the protocol's handler with the peer id the ticket was issued to: the peer
 *      is never trusted to say who it is on the lane itself.
 *
 * Anything that fails (no TCP connection to the peer, an old peer without lanes, a firewalled port) makes `dial`
 * throw LaneUnavailableError, and the caller uses a libp2p stream as before; a failed peer is not asked again for
 * a while. Bounded: tickets (in all and per peer), handshake time, connections (in all and per IP), and the ticket
 * exchange's size.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { Connection } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { silentLogger, type ComponentLogger, type Logger } from '../util/logger.js';
import { PROTOCOLS } from '../wire/protocols.js';
import { checkSchema, intIn, strictObject, text, token, z } from '../wire/schema.js';
import { LANE_DEFAULTS, type LaneLimits } from './defaults.js';
import { LaneRefusedError, LaneUnavailableError, MalformedRequestError, SwarmConfigError } from './errors.js';
import { handleJson, requestJson } from './registry/control.js';
import { parseReply } from './registry/messages.js';
import type { SwarmLibp2p } from './node.js';
import { ipOf, plainIp, tcpIpOf } from './addresses.js';

/** TLS 1.2 with a pre-shared key and an ephemeral ECDH exchange: authenticated both ways, forward secret. */
const TLS_OPTIONS = { ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;
const KEY_BYTES = 32;

const ticketRequestSchema = strictObject({ v: z.literal(1), protocol: text(1, 128, /^\/[\x21-\x7e]+$/) });
const ticketSchema = strictObject({
  port: intIn(1, 65_535),
  identity: token(/^[0-9a-f]{32}$/, '32 hex digits'),
  key: token(/^[A-Za-z0-9_-]{43}$/, `${KEY_BYTES} bytes of base64url`),
});
type Ticket = z.output<typeof ticketSchema>;

/** Who is at the other end of a lane: the libp2p peer the ticket was issued to, and the socket's IP. */
export interface LanePeer {
  readonly peerId: string;
  readonly ip: string | undefined;
}

/** Serves one lane socket (it owns the socket from then on). */
export type LaneHandler = (socket: TLSSocket, peer: LanePeer) => void;

/** Opens lanes to peers (what clients and forwarding servers need of DirectLanes). */
export interface LaneDialer {
  /** A connected TLS socket to `peerId` carrying `protocol`; LaneUnavailableError when there is none to be had. */
  dial(peerId: string, protocol: string, options: { signal: AbortSignal }): Promise<Socket>;
}

export interface DirectLaneSettings extends Partial<LaneLimits> {
  /** Listen host (createSwarmNode passes the host of its first TCP listen address); default 127.0.0.1. */
  readonly host?: string;
  /** Listen port; default 0 (any free port). Behind NAT or a firewall, a fixed and forwarded one. */
  readonly port?: number;
  /** The port tickets name, when a NAT or proxy forwards it to `port` (default: the listening port). */
  readonly announcePort?: number;
}

interface IssuedTicket {
  readonly protocol: string;
  readonly peerId: string;
  /** The IP of the libp2p connection that asked: the lane must come from there. */
  readonly ip: string;
  readonly key: Buffer;
  readonly expiresAt: number;
}

export class DirectLanes implements LaneDialer {
  private readonly limits: LaneLimits;
  private readonly log: Logger;
  private readonly handlers = new Map<string, LaneHandler>();
  private readonly tickets = new Map<string, IssuedTicket>();
  /** The ticket each socket presented, from its PSK callback to its secure connection. */
  private readonly presented = new WeakMap<TLSSocket, IssuedTicket>();
  /** Peers whose lane failed → when; they get libp2p streams until the entry is older than `retryAfterMs`. */
  private readonly failed = new Map<string, number>();
  /** Inbound lane connections (handshakes included) by IP. */
  private readonly perIp = new Map<string, number>();
  /** Open lane sockets, both ways: stopping the node closes them, as it closes its libp2p connections. */
  private readonly sockets = new Set<Socket>();
  private server: tls.Server | undefined;
  private listening: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly libp2p: SwarmLibp2p,
    private readonly settings: DirectLaneSettings = {},
    logger: ComponentLogger = silentLogger,
  ) {
    const { host: _host, port: _port, announcePort: _announcePort, ...limits } = settings;
    this.limits = { ...LANE_DEFAULTS, ...limits };
    this.log = logger.forComponent('corolla:swarm:lanes');
  }

  /** The port lanes are accepted on, once a handler is registered. */
  get port(): number | undefined {
    const address = this.server?.address();
    return typeof address === 'object' && address ? address.port : undefined;
  }

  /** Accepts lanes for `protocol`: starts the listener and the ticket protocol on first use. */
  async handle(protocol: string, handler: LaneHandler): Promise<void> {
    if (this.stopped) throw new SwarmConfigError('the node is stopped');
    this.handlers.set(protocol, handler);
    this.listening ??= this.listen();
    await this.listening;
  }

  /** Stops accepting lanes for `protocol` (lanes already open go on). */
  unhandle(protocol: string): void {
    this.handlers.delete(protocol);
  }

  async dial(peerId: string, protocol: string, options: { signal: AbortSignal }): Promise<Socket> {
    const failedAt = this.failed.get(peerId);
    if (failedAt !== undefined && Date.now() - failedAt < this.limits.retryAfterMs) throw new LaneUnavailableError(peerId, 'its last lane failed');
    const signal = AbortSignal.any([options.signal, AbortSignal.timeout(this.limits.dialTimeoutMs)]);
    try {
      const ticket = await this.requestTicket(peerId, protocol, signal);
      const host = this.hostOf(peerId);
      if (host === undefined) throw new Error('no TCP connection to the peer');
      const socket = await connect(host, ticket, signal);
      this.failed.delete(peerId);
      this.track(socket);
      return socket;
    } catch (cause) {
      // a caller giving up is no fault of the peer's
      if (!options.signal.aborted) this.remember(peerId);
      throw new LaneUnavailableError(peerId, (cause as Error)?.message ?? String(cause), { cause });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.handlers.clear();
    this.tickets.clear();
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (!server) return;
    await this.libp2p.unhandle(PROTOCOLS.lane.id).catch(() => {});
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async listen(): Promise<void> {
    const server = tls.createServer({
      ...TLS_OPTIONS,
      handshakeTimeout: this.limits.handshakeTimeoutMs,
      pskCallback: (socket, identity) => {
        const ticket = this.tickets.get(identity);
        if (!ticket) return null;
        this.tickets.delete(identity); // once
        if (ticket.expiresAt < Date.now() || ticket.ip !== plainIp(socket.remoteAddress)) return null;
        this.presented.set(socket, ticket);
        return ticket.key;
      },
    });
    server.maxConnections = this.limits.maxConnections;
    server.on('connection', (raw: Socket) => this.admit(raw));
    server.on('secureConnection', (socket) => this.accept(socket));
    server.on('tlsClientError', () => {}); // a failed handshake is the dialer's problem; it falls back
    server.on('error', (error) => this.log.error(`lane listener: ${error.message}`));
    const host = this.settings.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.settings.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((cause) => {
      throw new SwarmConfigError(`cannot listen for direct lanes on ${host}:${this.settings.port ?? 0}: ${(cause as Error).message}`, { cause });
    });
    this.server = server;
    await handleJson(this.libp2p, PROTOCOLS.lane, async (body, connection) => this.issue(body, connection));
    this.log(`direct lanes on ${host}:${this.port}`);
  }

  private issue(body: unknown, connection: Connection): Ticket {
    const request = checkSchema(ticketRequestSchema, body);
    if (!request.ok) throw new MalformedRequestError(request.reason);
    if (!this.handlers.has(request.value.protocol)) throw new LaneRefusedError(`no lanes for ${request.value.protocol}`);
    const peerId = connection.remotePeer.toString();
    const ip = ipOf(connection.remoteAddr);
    if (ip === undefined) throw new LaneRefusedError('the connection has no IP address to bind a ticket to');
    this.sweep();
    let held = 0;
    for (const ticket of this.tickets.values()) if (ticket.peerId === peerId) held++;
    if (held >= this.limits.maxTicketsPerPeer || this.tickets.size >= this.limits.maxTickets) throw new LaneRefusedError('too many lanes being opened');
    const identity = randomBytes(16).toString('hex');
    const key = randomBytes(KEY_BYTES);
    this.tickets.set(identity, { protocol: request.value.protocol, peerId, ip, key, expiresAt: Date.now() + this.limits.ticketTtlMs });
    return { port: this.settings.announcePort ?? this.port!, identity, key: key.toString('base64url') };
  }

  private accept(socket: TLSSocket): void {
    const ticket = this.presented.get(socket);
    const handler = ticket && this.handlers.get(ticket.protocol);
    if (!ticket || !handler || this.stopped) {
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, this.limits.keepAliveMs);
    this.track(socket);
    try {
      handler(socket, { peerId: ticket.peerId, ip: plainIp(socket.remoteAddress) });
    } catch (error) {
      this.log.error(`lane handler for ${ticket.protocol} failed: ${(error as Error)?.message ?? String(error)}`);
      socket.destroy();
    }
  }

  private async requestTicket(peerId: string, protocol: string, signal: AbortSignal): Promise<Ticket> {
    const reply = parseReply(await requestJson(this.libp2p, peerId, PROTOCOLS.lane, { v: 1, protocol }, { signal }));
    if (!reply.ok) throw new Error(reply.reason);
    const ticket = checkSchema(ticketSchema, reply.envelope);
    if (!ticket.ok) throw new Error(`malformed ticket: ${ticket.reason}`);
    return ticket.value;
  }

  /** The IP our TCP connection to the peer reached: the lane goes there, never to an address the peer names. */
  private hostOf(peerId: string): string | undefined {
    for (const connection of this.libp2p.getConnections(peerIdFromString(peerId))) {
      if (connection.status !== 'open' || connection.limits !== undefined) continue; // relayed connections have limits
      const ip = tcpIpOf(connection.remoteAddr);
      if (ip !== undefined) return ip;
    }
    return undefined;
  }

  /**
   * Before any handshake work: drops a raw connection from an IP that holds no ticket (only peers that just asked
   * over libp2p may connect) or that is over its connection limit, and counts the rest against their IP.
   */
  private admit(raw: Socket): void {
    const ip = plainIp(raw.remoteAddress) ?? '';
    const held = this.perIp.get(ip) ?? 0;
    if (held >= this.limits.maxConnectionsPerIp || !this.hasTicketFor(ip)) {
      raw.destroy();
      return;
    }
    this.perIp.set(ip, held + 1);
    raw.once('close', () => {
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left > 0) this.perIp.set(ip, left);
      else this.perIp.delete(ip);
    });
  }

  private hasTicketFor(ip: string): boolean {
    const now = Date.now();
    for (const ticket of this.tickets.values()) if (ticket.ip === ip && ticket.expiresAt >= now) return true;
    return false;
  }

  private track(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    // a reset is the owner's business (its channel listens too); unheard, it would take the process down
    socket.on('error', () => {});
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private remember(peerId: string): void {
    this.failed.delete(peerId);
    this.failed.set(peerId, Date.now());
    if (this.failed.size > this.limits.maxRememberedFailures) this.failed.delete(this.failed.keys().next().value!);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [identity, ticket] of this.tickets) if (ticket.expiresAt < now) this.tickets.delete(identity);
  }
}

function connect(host: string, ticket: Ticket, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const key = Buffer.from(ticket.key, 'base64url');
    const socket = tls.connect({
      ...TLS_OPTIONS,
      host,
      port: ticket.port,
      pskCallback: () => ({ psk: key, identity: ticket.identity }),
      // the PSK authenticates the server; there is no certificate to check
      checkServerIdentity: () => undefined,
    });
    const done = (error?: Error) => {
      signal.removeEventListener('abort', onAbort);
      socket.off('error', done);
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        resolve(socket);
      }
    };
    const onAbort = () => done(signal.reason as Error);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('secureConnect', () => done());
    socket.once('error', done);
  });
}

