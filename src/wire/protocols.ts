/**
 * Every libp2p protocol Corolla speaks, in one table. Ids are `/corolla/<name>/<major>.<minor>.<patch>`; peers
 * negotiate the exact string through multistream-select, and `isCompatibleProtocol` accepts any id with the same
 * name and major version. docs/protocols.md describes each protocol's messages, limits, errors and versioning rules.
 */

const SEMVER = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/;
const NAME = /^[a-z][a-z0-9-]*$/;

/** Namespace of every Corolla protocol id. */
export const PROTOCOL_NAMESPACE = '/corolla';

/** Version of the block wire protocol (messages.ts + frames.ts + tensor-codec.ts). A breaking change bumps the major. */
export const PROTOCOL_VERSION = '1.0.0';

/** Builds `/corolla/<name>/<version>`. */
export function protocolId(name: string, version: string = PROTOCOL_VERSION): string {
  if (!NAME.test(name)) throw new RangeError(`invalid protocol name "${name}"`);
  if (!SEMVER.test(version)) throw new RangeError(`invalid protocol version "${version}"`);
  return `${PROTOCOL_NAMESPACE}/${name}/${version}`;
}

export interface ProtocolSpec {
  readonly name: string;
  readonly version: string;
  /** The multistream id, `/corolla/<name>/<version>`. */
  readonly id: string;
  /** What one stream of this protocol carries. */
  readonly carries: string;
  /** Largest single message either side accepts on this protocol, in bytes. */
  readonly maxMessageBytes: number;
}

function spec(name: string, version: string, maxMessageBytes: number, carries: string): ProtocolSpec {
  return Object.freeze({ name, version, id: protocolId(name, version), carries, maxMessageBytes });
}

export const PROTOCOLS = Object.freeze({
  block: spec(
    'block',
    PROTOCOL_VERSION,
    64 * 1024 * 1024,
    'block-server sessions: open, step…, close; stateless forward; ping. One frame per message (frames.ts)',
  ),
  generate: spec(
    'generate',
    '1.0.0',
    1024 * 1024,
    'one whole-model generation: a JSON request, then {token} messages and one final {done} or {error}',
  ),
  announce: spec('announce', '1.0.0', 64 * 1024, 'one JSON request for the server\'s current signed record, one JSON reply'),
  heartbeat: spec('heartbeat', '1.0.0', 64 * 1024, 'one JSON request with a nonce, one reply: a signed load report bound to it'),
  lane: spec('lane', '1.0.0', 4 * 1024, 'one JSON request naming a protocol, one reply: a one-time ticket (port, identity, key) for a TLS-PSK direct lane'),
  kad: spec('kad', '1.0.0', 4 * 1024 * 1024, 'the Kademlia DHT (kad-dht protobuf RPC) of Corolla swarms, apart from the IPFS Amino DHT'),
} satisfies Record<string, ProtocolSpec>);

export type ProtocolName = keyof typeof PROTOCOLS;

/** Block server: sessions (open/step/close), stateless forward, ping. */
export const BLOCK_PROTOCOL = PROTOCOLS.block.id;
/**
 * Block-protocol streams between one client and one server at once: a server's per-peer stream quota and a client's
 * libp2p outbound-stream limit (libp2p's default of 64 would make a gateway with 100 sessions fail its own dials
 * and ban a healthy server).
 */
export const BLOCK_STREAMS_PER_PEER = 256;
/** Whole-model generation (a server holding every block plus head and tail). */
export const GENERATE_PROTOCOL = PROTOCOLS.generate.id;
/** Ask a server for its current signed record. */
export const ANNOUNCE_PROTOCOL = PROTOCOLS.announce.id;
/** Ask a server for its live load: a signed report bound to the asker's nonce. */
export const HEARTBEAT_PROTOCOL = PROTOCOLS.heartbeat.id;
/** Ask a server for a direct-lane ticket (swarm/lanes.ts). */
export const LANE_PROTOCOL = PROTOCOLS.lane.id;
/** The DHT of Corolla swarms. */
export const DHT_PROTOCOL = PROTOCOLS.kad.id;

export interface ParsedProtocolId {
  readonly name: string;
  readonly version: string;
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/** Parses `/corolla/<name>/<major>.<minor>.<patch>`; undefined when `id` is not of that form. */
export function parseProtocolId(id: string): ParsedProtocolId | undefined {
  const match = /^\/corolla\/([a-z][a-z0-9-]*)\/(\d+\.\d+\.\d+)$/.exec(id);
  if (!match) return undefined;
  const version = match[2]!;
  const semver = SEMVER.exec(version);
  if (!semver) return undefined;
  return { name: match[1]!, version, major: Number(semver[1]), minor: Number(semver[2]), patch: Number(semver[3]) };
}

/** True when `id` names the same protocol as `expected` with the same major version. */
export function isCompatibleProtocol(id: string, expected: string): boolean {
  const a = parseProtocolId(id);
  const b = parseProtocolId(expected);
  return a !== undefined && b !== undefined && a.name === b.name && a.major === b.major;
}
