/** `corolla dht` as a real process: first stdout line is a dialable multiaddr; SIGTERM exits 0. */
import { describe, expect, it, afterAll, beforeAll } from 'vitest';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSwarmNode } from '../../src/swarm/node.js';
import { loadOrCreateIdentity } from '../../src/swarm/identity.js';
import { killCorollaProcesses, spawnCorolla } from '../support/cli.js';
import { tempDir } from '../support/files.js';

let dir: string;

beforeAll(() => {
  dir = tempDir('corolla-cli-dht-');
});
afterAll(async () => {
  killCorollaProcesses();
  await rm(dir, { recursive: true, force: true });
});

const startDht = (args: string[]) => spawnCorolla(['dht', ...args], { firstLineTimeoutMs: 30_000 });

describe('corolla dht', () => {
  it('prints a dialable multiaddr first, keeps its identity, and exits 0 on SIGTERM', async () => {
    const identity = join(dir, 'keys', 'dht.key');
    const { child, stderr, firstLine } = startDht(['--identity', identity]);
    const address = await firstLine;
    expect(address).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW\w+$/);
    const peerId = address.split('/p2p/')[1]!;
    expect((await loadOrCreateIdentity(identity)).peerId).toBe(peerId);

    const node = await createSwarmNode({ transport: 'tcp', bootstrap: [address] });
    try {
      await node.waitForPeers(1, 15_000);
      expect(node.libp2p.getConnections().some((c) => c.remotePeer.toString() === peerId)).toBe(true);
      const rtt = await node.libp2p.services.ping.ping(node.libp2p.getConnections()[0]!.remotePeer);
      expect(rtt).toBeGreaterThanOrEqual(0);
    } finally {
      await node.stop();
    }

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code, signal] = (await exited) as [number | null, string | null];
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stderr()).toMatch(/SIGTERM: stopping/);
  });

  it('a corrupt identity file is a clear error and exit code 1, not a stack trace', async () => {
    const identity = join(dir, 'corrupt.key');
    await writeFile(identity, 'not a key');
    const { child, stderr } = startDht(['--identity', identity]);
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(stderr()).toMatch(/corolla: identity file .*corrupt\.key: not a libp2p protobuf-encoded private key/);
    expect(stderr()).not.toMatch(/\n\s+at /);
  });
});
