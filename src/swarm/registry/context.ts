/** What the registry's parts share: the node, resolved settings, the logger, and the signal that `close` aborts. */
import { setMaxListeners } from 'node:events';
import type { Logger } from '../../util/logger.js';
import { silentLogger } from '../../util/logger.js';
import { SwarmConfigError } from '../errors.js';
import type { SwarmLibp2p, SwarmNode } from '../node.js';
import type { RegistryOptions } from './types.js';

export const REGISTRY_DEFAULTS = {
  refreshMs: 30_000,
  ttlMs: 90_000,
  minRepublishMs: 5_000,
  reprovideMs: 10 * 60_000,
  publishTimeoutMs: 10_000,
  lookupTimeoutMs: 5_000,
  requestTimeoutMs: 3_000,
  concurrency: 16,
  direct: 'prefer',
  unreachableMs: 60_000,
} as const satisfies Required<Omit<RegistryOptions, 'clockSkewMs' | 'logger'>>;

/** A signed load report lives at most this long (it answers one request). */
export const MAX_LOAD_REPORT_TTL_MS = 60_000;
/** Budget for a peer to send its whole control request. */
export const CONTROL_REQUEST_TIMEOUT_MS = 10_000;

export type RegistrySettings = Required<Omit<RegistryOptions, 'clockSkewMs' | 'logger'>> & { clockSkewMs?: number };

export interface RegistryContext {
  readonly node: SwarmNode;
  readonly libp2p: SwarmLibp2p;
  readonly peerId: string;
  readonly settings: RegistrySettings;
  readonly log: Logger;
  /** Aborted by close(); every request derives its signal from it. */
  readonly closed: AbortSignal;
}

export function createContext(node: SwarmNode, options: RegistryOptions, closed: AbortSignal): RegistryContext {
  const { logger, ...rest } = options;
  const settings: RegistrySettings = { ...REGISTRY_DEFAULTS, ...stripUndefined(rest) };
  if (!(settings.ttlMs > settings.refreshMs)) throw new SwarmConfigError(`ttlMs (${settings.ttlMs}) must exceed refreshMs (${settings.refreshMs})`);
  setMaxListeners(Infinity, closed);
  return { node, libp2p: node.libp2p, peerId: node.peerId, settings, log: (logger ?? silentLogger).forComponent('corolla:registry'), closed };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A signal that aborts on `parent` or after `ms`; kad-dht hangs many listeners on it, so lift the listener cap. */
export function deadline(parent: AbortSignal, ms: number): AbortSignal {
  const signal = AbortSignal.any([parent, AbortSignal.timeout(ms)]);
  setMaxListeners(Infinity, signal);
  return signal;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
