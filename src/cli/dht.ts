/**
 * `corolla dht`: a bootstrap-only peer. It serves the DHT (routing, records, provider records) and nothing else.
 * The FIRST line of stdout is one full dialable multiaddr (with /p2p/<id>) for other peers' --bootstrap; everything
 * else goes to stderr. SIGINT/SIGTERM stop it cleanly (exit 0).
 */
import { parseArgs } from 'node:util';
import { lineLogger } from '../util/logger.js';
import { createSwarmNode } from '../swarm/node.js';
import { loadOrCreateIdentity } from '../swarm/identity.js';
import { loadPsk } from '../swarm/psk.js';

/** Every interface, so that other machines can reach a bootstrap peer. */
const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/0';
/** How often the connection and routing-table counts are logged. */
const STATUS_INTERVAL_MS = 60_000;

const USAGE = `usage: corolla dht [options]

Runs a bootstrap-only DHT peer. Prints its multiaddr (with /p2p/<peer id>) as the first line of stdout.

options:
  --listen MULTIADDR     address to listen on (repeatable; default ${DEFAULT_LISTEN})
  --announce MULTIADDR   address to advertise instead (repeatable; e.g. a public IP or DNS name)
  --identity FILE        Ed25519 key file; created (mode 0600) when missing. Keeps the peer id stable across
                         restarts, which a bootstrap address needs. Default: a new id every run.
  --psk FILE             swarm key file (/key/swarm/psk/1.0.0/): run a private swarm
  --bootstrap MULTIADDR  other bootstrap peers to join (repeatable)
  -h, --help             show this help`;

/** Picks the address to print first: loopback if we listen there, else the first concrete (non-wildcard) one. */
export function pickPrintableAddress(addrs: string[]): string | undefined {
  const concrete = addrs.filter((addr) => !addr.startsWith('/ip4/0.0.0.0/') && !addr.startsWith('/ip6/::/'));
  return concrete.find((addr) => addr.startsWith('/ip4/127.0.0.1/')) ?? concrete.find((addr) => addr.startsWith('/ip6/::1/')) ?? concrete[0] ?? addrs[0];
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      identity: { type: 'string' },
      psk: { type: 'string' },
      bootstrap: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const log = (line: string): void => {
    process.stderr.write(`[dht ${new Date().toISOString()}] ${line}\n`);
  };

  const identity = values.identity ? await loadOrCreateIdentity(values.identity, { logger: lineLogger(log) }) : undefined;
  if (identity) log(`${identity.created ? 'created new' : 'loaded'} identity ${identity.peerId} (${values.identity})`);
  const psk = values.psk ? await loadPsk(values.psk, { logger: lineLogger(log) }) : undefined;

  const node = await createSwarmNode({
    listen: values.listen ?? [DEFAULT_LISTEN],
    announce: values.announce,
    bootstrap: values.bootstrap,
    privateKey: identity?.privateKey,
    psk,
    logger: lineLogger(log),
  });

  // Stop on the first signal; a second one while stopping exits at once.
  let stopping = false;
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (signal: string): void => {
      if (stopping) {
        log(`${signal} again: exiting now`);
        process.exit(130);
      }
      stopping = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  const addrs = node.multiaddrs;
  const first = pickPrintableAddress(addrs);
  if (!first) {
    await node.stop();
    throw new Error('the node has no listen address');
  }
  process.stdout.write(`${first}\n`);
  log(`peer ${node.peerId} listening on:\n  ${addrs.join('\n  ')}${psk ? '\n  (private swarm: PSK required)' : ''}`);
  node.libp2p.addEventListener('peer:connect', (event) => log(`peer connected: ${event.detail.toString()}`));
  node.libp2p.addEventListener('peer:disconnect', (event) => log(`peer disconnected: ${event.detail.toString()}`));
  const status = setInterval(() => log(`${node.libp2p.getConnections().length} connections, ${node.routingTableSize} peers in routing table`), STATUS_INTERVAL_MS);
  status.unref();

  const signal = await stopped;
  clearInterval(status);
  log(`${signal}: stopping`);
  await node.stop();
  log('stopped');
  // libp2p can leave a stray handle behind; never let that keep a stopped process alive.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
}
