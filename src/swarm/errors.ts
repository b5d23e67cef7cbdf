import { CorollaError } from '../errors.js';

/** The identity (private key) file exists but cannot be read as a libp2p Ed25519 private key. */
export class IdentityFileError extends CorollaError {
  override readonly name = 'IdentityFileError';
  readonly file: string;
  constructor(file: string, reason: string, options: { cause?: unknown } = {}) {
    super('IDENTITY_FILE_INVALID', `identity file ${file}: ${reason}`, options);
    this.file = file;
  }
}

/** The pre-shared swarm key file (private network) is missing or not in the `/key/swarm/psk/1.0.0/` format. */
export class PskFileError extends CorollaError {
  override readonly name = 'PskFileError';
  readonly file: string;
  constructor(file: string, reason: string, options: { cause?: unknown } = {}) {
    super('PSK_FILE_INVALID', `swarm key file ${file}: ${reason}`, options);
    this.file = file;
  }
}

/** Bad options given to the swarm layer (a listen or bootstrap address that does not parse, an invalid record). */
export class SwarmConfigError extends CorollaError {
  override readonly name = 'SwarmConfigError';
  constructor(message: string, options: { cause?: unknown; details?: string } = {}) {
    super('SWARM_CONFIG', message, options);
  }
}

/** A record we were asked to sign or publish does not pass our own validation. */
export class InvalidRecordError extends CorollaError {
  override readonly name = 'InvalidRecordError';
  readonly reason: string;
  constructor(reason: string) {
    super('SWARM_INVALID_RECORD', `invalid announcement record: ${reason}`);
    this.reason = reason;
  }
}

/** A request to a peer over one of our small protocols (announce, heartbeat) failed or returned something unusable. */
export class PeerRequestError extends CorollaError {
  override readonly name = 'PeerRequestError';
  readonly peerId: string;
  constructor(peerId: string, protocol: string, reason: string, options: { cause?: unknown } = {}) {
    super('SWARM_PEER_REQUEST', `${protocol} request to ${peerId} failed: ${reason}`, options);
    this.peerId = peerId;
  }
}

/** Something in the swarm did not happen within its time budget (peers to appear, a reply to come back). */
export class SwarmTimeoutError extends CorollaError {
  override readonly name = 'SwarmTimeoutError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('SWARM_TIMEOUT', message, options);
  }
}

/** A control request (announce, heartbeat) that does not follow its schema; the reason names the first bad field. */
export class MalformedRequestError extends CorollaError {
  override readonly name = 'MalformedRequestError';
  constructor(reason: string) {
    super('MALFORMED', `malformed request: ${reason}`);
  }
}

/** Asked for a record or load of a model this node does not announce (or before it announced anything). */
export class NotServingError extends CorollaError {
  override readonly name = 'NotServingError';
  constructor(modelId: string | undefined) {
    super('NOT_SERVING', modelId === undefined ? 'not serving: nothing announced' : `not serving model ${modelId}`);
  }
}

/** This node refused to store a DHT record or provider entry: its owner is over a quota (see dht/store.ts). */
export class DhtQuotaError extends CorollaError {
  override readonly name = 'DhtQuotaError';
  readonly peerId: string;
  constructor(peerId: string, reason: string) {
    super('DHT_QUOTA', `DHT store refused a write for ${peerId}: ${reason}`);
    this.peerId = peerId;
  }
}

/** A peer refused to issue a direct-lane ticket (no lanes for that protocol here, or too many being opened). */
export class LaneRefusedError extends CorollaError {
  override readonly name = 'LaneRefusedError';
  constructor(reason: string) {
    super('LANE_REFUSED', `lane refused: ${reason}`);
  }
}

/** No direct lane to a peer could be opened (swarm/lanes.ts); the caller goes on over a libp2p stream. */
export class LaneUnavailableError extends CorollaError {
  override readonly name = 'LaneUnavailableError';
  readonly peerId: string;
  constructor(peerId: string, reason: string, options: { cause?: unknown } = {}) {
    super('LANE_UNAVAILABLE', `no direct lane to ${peerId}: ${reason}`, options);
    this.peerId = peerId;
  }
}
