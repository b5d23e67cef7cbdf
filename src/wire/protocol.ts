/**
 * libp2p protocol ids. Each is `/corolla/<name>/<semver>`; peers negotiate the exact string through multistream,
 * and `isCompatibleProtocol` accepts any id with the same name and major version.
 *
 * `/corolla/block/1.0.0` carries the block-server protocol of messages.ts, framed by frames.ts. A client opens one
 * stream per inference session and sends `open`, then `step`s, then `close`; a stream may also carry stateless
 * `forward` requests and `ping`s. Every request gets exactly one reply frame (its result, or an `error` naming the
 * session / step / request it answers), in request order.
 */

/** Version of the wire protocol: messages.ts + frames.ts + tensor-codec.ts. A breaking change bumps the major. */
export const PROTOCOL_VERSION = '1.0.0';

const SEMVER = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/;

/** Namespace of every Corolla protocol id. */
export const PROTOCOL_NAMESPACE = '/corolla';

/** Builds `/corolla/<name>/<version>`. */
export function protocolId(name: string, version: string = PROTOCOL_VERSION): string {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new RangeError(`invalid protocol name "${name}"`);
  if (!SEMVER.test(version)) throw new RangeError(`invalid protocol version "${version}"`);
  return `${PROTOCOL_NAMESPACE}/${name}/${version}`;
}

/** Block server: sessions (open/step/close), stateless forward, ping. */
export const BLOCK_PROTOCOL = protocolId('block');
/** Liveness and load of a peer: a small request/response for routing and span balancing. */
export const HEARTBEAT_PROTOCOL = protocolId('heartbeat');
/** Server info: model, span, version, dtype, throughput, cache tokens left (Petals' rpc_info). */
export const INFO_PROTOCOL = protocolId('info');

export const PROTOCOLS = Object.freeze({
  block: BLOCK_PROTOCOL,
  heartbeat: HEARTBEAT_PROTOCOL,
  info: INFO_PROTOCOL,
});

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
