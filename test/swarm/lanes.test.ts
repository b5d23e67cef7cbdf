// runs alone: measures time (vitest.config.ts)
/**
 * Direct lanes (swarm/lanes.ts): a ticket from the libp2p connection opens a TLS-PSK socket that the listener hands
 * to the protocol's handler with the ticket holder's peer id; tickets are single-use, short-lived, bounded per peer;
 * a wrong key, an unknown identity or an IP without a ticket never reaches the handler; a peer without lanes makes dial fail fast with a
 * typed error, and is remembered.
 */
import net from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { LaneUnavailableError } from '../../src/swarm/errors.js';
import type { LanePeer } from '../../src/swarm/lanes.js';
import { requestJson } from '../../src/swarm/registry/control.js';
import { PROTOCOLS } from '../../src/wire/protocols.js';

const PROTOCOL = '/corolla-test/echo/1.0.0';
const nodes: SwarmNode[] = [];
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

async function node(options: Parameters<typeof createSwarmNode>[0] = {}): Promise<SwarmNode> {
  const created = await createSwarmNode({ transport: 'tcp', ...options });
  nodes.push(created);
  return created;
}

/** A server whose lane handler echoes bytes and records who connected. */
async function echoServer(settings: Parameters<typeof createSwarmNode>[0] = {}): Promise<{ server: SwarmNode; peers: LanePeer[] }> {
  const server = await node(settings);
  const peers: LanePeer[] = [];
  await server.lanes!.handle(PROTOCOL, (socket, peer) => {
    peers.push(peer);
    socket.pipe(socket);
  });
  return { server, peers };
}

const signal = () => AbortSignal.timeout(5_000);

async function roundTrip(socket: { write(b: Uint8Array): boolean; once(e: 'data', f: (b: Buffer) => void): unknown }, bytes: Uint8Array): Promise<Uint8Array> {
  const reply = new Promise<Buffer>((resolve) => socket.once('data', resolve));
  socket.write(bytes);
  return new Uint8Array(await reply);
}

/** Asks `server` for a ticket directly (what dial does first). */
async function ticket(client: SwarmNode, server: SwarmNode, protocol = PROTOCOL): Promise<{ ok: boolean; envelope?: { port: number; identity: string; key: string }; error?: { code: string } }> {
  return (await requestJson(client.libp2p, server.peerId, PROTOCOLS.lane, { v: 1, protocol }, { signal: signal() })) as never;
}

function connectWith(port: number, identity: string, key: Buffer): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1', port, ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2',
      pskCallback: () => ({ psk: key, identity }), checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('direct lanes', () => {
  it('opens an encrypted socket that the handler receives with the dialer\'s peer id and IP', async () => {
    const { server, peers } = await echoServer();
    const client = await node({ bootstrap: [server.multiaddrs[0]!] });
    const socket = await client.lanes!.dial(server.peerId, PROTOCOL, { signal: signal() });
    try {
      expect((socket as TLSSocket).getCipher().name).toBe('ECDHE-PSK-CHACHA20-POLY1305');
      const bytes = new Uint8Array(2304).map((_, i) => i % 251);
      expect(await roundTrip(socket, bytes)).toEqual(bytes);
      expect(peers).toEqual([{ peerId: client.peerId, ip: '127.0.0.1' }]);
    } finally {
      socket.destroy();
    }
  });

  it('a ticket opens one socket; a reused ticket, a wrong key or an unknown identity never reach the handler', async () => {
    const { server, peers } = await echoServer();
    const client = await node({ bootstrap: [server.multiaddrs[0]!] });
    const reply = await ticket(client, server);
    expect(reply.ok).toBe(true);
    const { port, identity, key } = reply.envelope!;
    expect(port).toBe(server.lanes!.port);
    const first = await connectWith(port, identity, Buffer.from(key, 'base64url'));
    expect(await roundTrip(first, Uint8Array.of(7))).toEqual(Uint8Array.of(7));
    first.destroy();
    await expect(connectWith(port, identity, Buffer.from(key, 'base64url'))).rejects.toThrow();

    const second = (await ticket(client, server)).envelope!;
    const wrong = Buffer.from(second.key, 'base64url');
    wrong[0]! ^= 1;
    await expect(connectWith(port, second.identity, wrong)).rejects.toThrow();
    // the identity was spent on the failed handshake too
    await expect(connectWith(port, second.identity, Buffer.from(second.key, 'base64url'))).rejects.toThrow();
    await expect(connectWith(port, '0'.repeat(32), Buffer.alloc(32))).rejects.toThrow();
    expect(peers).toHaveLength(1);
  });

  it('tickets expire, are refused for protocols without a handler, and are bounded per peer', async () => {
    const { server: short } = await echoServer({ lanes: { ticketTtlMs: 50 } });
    const client = await node({ bootstrap: [short.multiaddrs[0]!] });
    const stale = (await ticket(client, short)).envelope!;
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expect(connectWith(stale.port, stale.identity, Buffer.from(stale.key, 'base64url'))).rejects.toThrow();

    const { server } = await echoServer({ lanes: { maxTicketsPerPeer: 3 } });
    await client.connect(server.multiaddrs[0]!);
    const other = await ticket(client, server, '/corolla-test/other/1.0.0');
    expect(other).toMatchObject({ ok: false, error: { code: 'LANE_REFUSED' } });
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await ticket(client, server));
    expect(replies.map((r) => r.ok)).toEqual([true, true, true, false]);
    expect(replies[3]).toMatchObject({ error: { code: 'LANE_REFUSED' } });
  });

  it('a peer without lanes makes dial fail with LaneUnavailableError, and later dials fail at once', async () => {
    const server = await node(); // lanes, but no handler: no listener, no ticket protocol
    const client = await node({ bootstrap: [server.multiaddrs[0]!] });
    const error = await client.lanes!.dial(server.peerId, PROTOCOL, { signal: signal() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LaneUnavailableError);
    expect((error as LaneUnavailableError).code).toBe('LANE_UNAVAILABLE');
    const started = performance.now();
    await expect(client.lanes!.dial(server.peerId, PROTOCOL, { signal: signal() })).rejects.toThrow(/last lane failed/);
    expect(performance.now() - started).toBeLessThan(500); // no ticket request: the 3 s dial timeout is not paid again
  });

  it('drops a connection from an IP that holds no ticket before any TLS work', async () => {
    const { server } = await echoServer();
    const stranger = net.connect(server.lanes!.port!, '127.0.0.1');
    const closed = new Promise((resolve) => stranger.once('close', () => resolve(true)));
    await new Promise((resolve) => stranger.once('connect', resolve));
    // it sends nothing: a listener that waited for a ClientHello would hold it until the handshake timeout
    try {
      expect(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve(false), 1_000))])).toBe(true);
    } finally {
      stranger.destroy();
    }
  });

  it('one IP holds at most maxConnectionsPerIp lane sockets, handshakes included', async () => {
    const { server } = await echoServer({ lanes: { maxConnectionsPerIp: 2 } });
    const client = await node({ bootstrap: [server.multiaddrs[0]!] });
    const port = server.lanes!.port!;
    const raw = async () => {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      return socket;
    };
    await ticket(client, server); // only an IP holding a ticket may connect at all
    const held = [await raw(), await raw()];
    const third = await raw();
    try {
      // dropped at once, not after the 5 s handshake timeout
      const dropped = await Promise.race([new Promise((resolve) => third.once('close', () => resolve(true))), new Promise((resolve) => setTimeout(() => resolve(false), 1_000))]);
      expect(dropped).toBe(true);
      expect(held.every((socket) => !socket.destroyed)).toBe(true);
    } finally {
      for (const socket of [...held, third]) socket.destroy();
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const socket = await client.lanes!.dial(server.peerId, PROTOCOL, { signal: signal() });
    expect(await roundTrip(socket, Uint8Array.of(3))).toEqual(Uint8Array.of(3));
    socket.destroy();
  });

  it('is off with lanes: false and on the memory transport', async () => {
    expect((await node({ lanes: false })).lanes).toBeUndefined();
    expect((await node({ transport: 'memory' })).lanes).toBeUndefined();
  });

  it('tickets name the announced port when a NAT or proxy forwards it', async () => {
    const { server } = await echoServer({ lanes: { announcePort: 4242 } });
    const client = await node({ bootstrap: [server.multiaddrs[0]!] });
    expect((await ticket(client, server)).envelope!.port).toBe(4242);
  });
});
