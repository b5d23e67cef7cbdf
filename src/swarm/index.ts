/** The swarm layer: libp2p node, identity, signed records, and the announce/lookup registry. */
export * from './errors.js';
export * from './identity.js';
export * from './psk.js';
export * from './records.js';
export * from './keys.js';
export { createSwarmNode, DEFAULT_DHT_PROTOCOL } from './node.js';
export type { SwarmNode, SwarmNodeOptions, SwarmServices, SwarmLibp2p, SwarmTransport } from './node.js';
export { ANNOUNCE_PROTOCOL, HEARTBEAT_PROTOCOL, MAX_CONTROL_MESSAGE_BYTES, requestJson, handleJson } from './protocol.js';
export { createRegistry, coverageOf } from './registry.js';
export type {
  Registry,
  RegistryOptions,
  AnnounceInput,
  LoadUpdate,
  PublishResult,
  RejectedRecord,
  LookupResult,
  LookupOptions,
  BlockCoverage,
  ModelCoverage,
} from './registry.js';
