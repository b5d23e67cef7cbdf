/** The swarm layer: libp2p node, identity, PSK, DHT keys and validators, signed records, and the registry. */
export * from './errors.js';
export * from './identity.js';
export * from './psk.js';
export * from './records/index.js';
export * from './dht/keys.js';
export * from './dht/validators.js';
export { createSwarmNode } from './node.js';
export type { SwarmNode, SwarmNodeOptions, SwarmServices, SwarmLibp2p, SwarmTransport } from './node.js';
export * from './registry/index.js';
export { DirectLanes, type DirectLaneSettings, type LaneDialer, type LaneHandler, type LanePeer } from './lanes.js';
