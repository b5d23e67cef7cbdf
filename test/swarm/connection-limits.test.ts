/** Connection limits of a real TCP node: the per-IP gater refuses a host's extra connections, others keep working. */
import { afterEach, describe, expect, it } from 'vitest';
import { peerIdFromString } from '@libp2p/peer-id';
import { DEFAULT_CONNECTION_LIMITS } from '../../src/swarm/defaults.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { eventually } from '../support/wait.js';

const nodes: SwarmNode[] = [];
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.stop().catch(() => {});
});
const start = async (options: Parameters<typeof createSwarmNode>[0] = {}) => {
  const node = await createSwarmNode({ transport: 'tcp', ...options });
  nodes.push(node);
  return node;
};

describe('connection limits', () => {
  it('refuses inbound connections from one IP over maxInboundConnectionsPerIp; the admitted ones keep working', async () => {
    const server = await start({ connections: { maxInboundConnectionsPerIp: 2 } });
    const [a, b, c] = [await start(), await start(), await start()];
    await a.connect(server.multiaddrs[0]!);
    await b.connect(server.multiaddrs[0]!);
    const inbound = () => server.libp2p.getConnections().filter((connection) => connection.direction === 'inbound').length;
    await eventually(async () => inbound() === 2, 5000, 20);
    await expect(c.connect(server.multiaddrs[0]!, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
    expect(inbound()).toBe(2);
    for (const honest of [a, b]) expect(await honest.libp2p.services.ping.ping(peerIdFromString(server.peerId))).toBeGreaterThanOrEqual(0);
    // once one leaves, the host may connect again
    await a.stop();
    nodes.splice(nodes.indexOf(a), 1);
    for (let i = 0; i < 50 && server.libp2p.getConnections().length > 1; i++) await new Promise((r) => setTimeout(r, 20));
    await c.connect(server.multiaddrs[0]!);
  });

  it('an allow-listed address is exempt, and the defaults live in one place', async () => {
    expect(DEFAULT_CONNECTION_LIMITS).toMatchObject({ maxConnections: 300, maxIncomingPendingConnections: 32, inboundConnectionThreshold: 5, maxInboundConnectionsPerIp: 64 });
    const server = await start({ connections: { maxInboundConnectionsPerIp: 1, allow: ['/ip4/127.0.0.1'] } });
    const [a, b] = [await start(), await start()];
    await a.connect(server.multiaddrs[0]!);
    await b.connect(server.multiaddrs[0]!);
    // the listener registers a connection a moment after the dialer's connect resolves
    await eventually(async () => server.libp2p.getConnections().length === 2, 5000, 20);
  });
});
