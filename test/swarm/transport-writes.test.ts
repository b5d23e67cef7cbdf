/**
 * What a message costs on the TCP socket: one write per encrypted message (swarm/single-write.ts), and no window
 * update per message (swarm/lazy-window-updates.ts), while large transfers still flow.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { lpStream } from '@libp2p/utils';
import { peerIdFromString } from '@libp2p/peer-id';
import { Uint8ArrayList } from 'uint8arraylist';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { joinChunksOnSend } from '../../src/swarm/single-write.js';

const nodes: SwarmNode[] = [];
afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
});

describe('single-write encrypter', () => {
  it('joins a multi-chunk list into one buffer with the same bytes, and passes single buffers through', () => {
    const sent: unknown[] = [];
    const connection = joinChunksOnSend({ send: (data: unknown) => (sent.push(data), true) } as never) as { send: (data: unknown) => boolean };
    const list = new Uint8ArrayList(Uint8Array.of(1, 2), Uint8Array.of(3), Uint8Array.of(4, 5, 6));
    const single = Uint8Array.of(9, 9);
    expect(connection.send(list)).toBe(true);
    connection.send(single);
    expect(sent[0]).toBeInstanceOf(Uint8Array);
    expect([...(sent[0] as Uint8Array)]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(sent[1]).toBe(single);
  });

  it('a request and its reply of one hidden state each cost a handful of socket writes, not one per chunk', async () => {
    const server = await createSwarmNode({ transport: 'tcp' });
    nodes.push(server);
    await server.libp2p.handle('/corolla-test/echo/1', async (stream) => {
      const lp = lpStream(stream);
      for (;;) await lp.write((await lp.read()).subarray());
    });
    const client = await createSwarmNode({ transport: 'tcp', bootstrap: [server.multiaddrs[0]!] });
    nodes.push(client);
    const lp = lpStream(await client.libp2p.dialProtocol(peerIdFromString(server.peerId), '/corolla-test/echo/1'));
    const message = new Uint8Array(576 * 4).map((_, i) => i % 251);
    for (let i = 0; i < 3; i++) await lp.write(message), await lp.read(); // settle window growth and acks
    // count the writes on sockets (vi.spyOn does not see calls through Duplex.prototype here)
    let socketWrites = 0;
    const write = Duplex.prototype.write;
    Duplex.prototype.write = function (this: Duplex, ...args: Parameters<Duplex['write']>) {
      if (this instanceof net.Socket) socketWrites++;
      return write.apply(this, args);
    } as Duplex['write'];
    const rounds = 50;
    try {
      for (let i = 0; i < rounds; i++) {
        await lp.write(message);
        expect(new Uint8Array((await lp.read()).subarray())).toEqual(message);
      }
      await new Promise((resolve) => setTimeout(resolve, 50)); // the last window update
    } finally {
      Duplex.prototype.write = write;
    }
    // a request and a reply: 2 writes a round trip, plus the nodes' own background traffic (identify, DHT) seen
    // meanwhile; each message used to take 5 or more writes (16 a round trip), and a window update each (4.8)
    expect(socketWrites).toBeGreaterThanOrEqual(2 * rounds);
    expect(socketWrites / rounds).toBeLessThanOrEqual(3.2);
  });

  it('transfers far larger than the initial window still flow both ways (window updates when half is used)', async () => {
    const server = await createSwarmNode({ transport: 'tcp' });
    nodes.push(server);
    await server.libp2p.handle('/corolla-test/sum/1', async (stream) => {
      const lp = lpStream(stream, { maxDataLength: 64 << 20, maxBufferSize: 65 << 20 });
      for (;;) {
        const data = (await lp.read()).subarray();
        await lp.write(data.map((x) => 255 - x));
      }
    });
    const client = await createSwarmNode({ transport: 'tcp', bootstrap: [server.multiaddrs[0]!] });
    nodes.push(client);
    const lp = lpStream(await client.libp2p.dialProtocol(peerIdFromString(server.peerId), '/corolla-test/sum/1'), { maxDataLength: 64 << 20, maxBufferSize: 65 << 20 });
    for (const size of [300_000, 5_000_000, 20_000_000]) {
      const message = new Uint8Array(size).map((_, i) => i % 253);
      await lp.write(message);
      const reply = (await lp.read()).subarray();
      expect(reply.length).toBe(size);
      expect(reply[0]).toBe(255);
      expect(reply[size - 1]).toBe(255 - ((size - 1) % 253));
    }
  }, 60_000);
});
