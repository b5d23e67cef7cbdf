/** The swarm over real TCP on loopback, and private swarms (pnet PSK). */
import { describe, expect, it, afterAll } from 'vitest';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { createRegistry, type Registry } from '../../src/swarm/registry/index.js';
import { generatePsk } from '../../src/swarm/psk.js';
import { PskFileError, SwarmConfigError } from '../../src/swarm/errors.js';
import { FAST, serverInput } from '../support/swarm.js';
import { eventually } from '../support/wait.js';

const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {});
});

async function node(options: Parameters<typeof createSwarmNode>[0] = {}): Promise<SwarmNode> {
  const created = await createSwarmNode({ transport: 'tcp', ...options });
  cleanup.push(() => created.stop());
  return created;
}

async function registry(of: SwarmNode): Promise<Registry> {
  const created = await createRegistry(of, FAST);
  cleanup.push(() => created.close());
  return created;
}

describe('TCP loopback', () => {
  it('servers and a client discover each other through the registry', async () => {
    const boot = await node();
    expect(boot.multiaddrs[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${boot.peerId}$`));
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => node({ bootstrap: [boot.multiaddrs[0]!] })));
    await Promise.all([a!, b!, c!].map((n) => n.waitForPeers(3, 15_000)));
    const [ra, rb, rc] = await Promise.all([a!, b!, c!].map((n) => registry(n)));
    await Promise.all([ra!.announce(serverInput('tcp/model', 0, 5, 10)), rb!.announce(serverInput('tcp/model', 5, 10, 10))]);
    const records = await eventually(async () => {
      const found = await rc!.lookup('tcp/model');
      return found.length === 2 ? found : undefined;
    }, 15_000);
    expect(records.map((r) => r.record.peerId)).toEqual([a!.peerId, b!.peerId]);
    expect(records[0]!.record.addrs[0]).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//);
    const [model] = await rc!.listModels();
    expect(model).toMatchObject({ modelId: 'tcp/model', servers: 2, complete: true });
    expect((await rc!.heartbeat(a!.peerId)).record.peerId).toBe(a!.peerId);
  });

  it('rejects bad options with typed errors', async () => {
    await expect(createSwarmNode({ transport: 'tcp', listen: ['not-an-addr'] })).rejects.toBeInstanceOf(SwarmConfigError);
    await expect(createSwarmNode({ transport: 'tcp', bootstrap: ['/ip4/127.0.0.1/tcp/4001'] })).rejects.toThrow(/lacks \/p2p/);
    await expect(createSwarmNode({ transport: 'tcp', psk: new TextEncoder().encode('nope') })).rejects.toBeInstanceOf(PskFileError);
  });
});

describe('private swarm (PSK)', () => {
  it('members with the key form a swarm; peers without it (or with another key) cannot join', async () => {
    const psk = generatePsk();
    const boot = await node({ psk });
    const member = await node({ psk, bootstrap: [boot.multiaddrs[0]!] });
    const client = await node({ psk, bootstrap: [boot.multiaddrs[0]!] });
    await Promise.all([member.waitForPeers(2, 15_000), client.waitForPeers(2, 15_000)]);
    const [server, reader] = await Promise.all([registry(member), registry(client)]);
    await server.announce(serverInput('private/model', 0, 2, 2));
    const found = await eventually(async () => {
      const records = await reader.lookup('private/model');
      return records.length === 1 ? records : undefined;
    }, 15_000);
    expect(found[0]!.record.peerId).toBe(member.peerId);

    for (const outsiderPsk of [undefined, generatePsk()]) {
      const outsider = await node({ psk: outsiderPsk, bootstrap: [boot.multiaddrs[0]!], bootstrapTimeoutMs: 2_000 });
      await expect(outsider.connect(member.multiaddrs[0]!, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
      expect(outsider.routingTableSize).toBe(0);
      expect(outsider.libp2p.getConnections().length).toBe(0);
      await outsider.stop();
    }
    expect(boot.libp2p.getConnections().map((c) => c.remotePeer.toString()).sort()).toEqual([member.peerId, client.peerId].sort());
  });
});
