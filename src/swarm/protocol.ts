/**
 * One-shot JSON request/response over a libp2p stream: the client writes one length-prefixed JSON message, the
 * server answers with one, both close. Used by the small control protocols (announce, heartbeat).
 */
import { lpStream } from '@libp2p/utils';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Connection, Stream } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { SwarmLibp2p } from './node.js';
import { PeerRequestError, SwarmConfigError } from './errors.js';

/** Ask a server for its current signed record. */
export const ANNOUNCE_PROTOCOL = '/corolla/announce/1.0.0';
/** Ask a server for its live load (signed, nonce-bound). */
export const HEARTBEAT_PROTOCOL = '/corolla/heartbeat/1.0.0';
/** Largest control message either side accepts. */
export const MAX_CONTROL_MESSAGE_BYTES = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export interface RequestOptions {
  signal?: AbortSignal;
  /** Addresses to merge into the peer store before dialing (e.g. from a provider record). */
  addrs?: Multiaddr[];
}

/** Sends `body` to `peerId` on `protocol` and returns the parsed JSON reply. Throws PeerRequestError. */
export async function requestJson(libp2p: SwarmLibp2p, peerId: string, protocol: string, body: unknown, options: RequestOptions = {}): Promise<unknown> {
  let stream: Stream | undefined;
  try {
    const target = peerIdFromString(peerId);
    if (options.addrs && options.addrs.length > 0) await libp2p.peerStore.merge(target, { multiaddrs: options.addrs });
    stream = await libp2p.dialProtocol(target, protocol, { signal: options.signal });
    const lp = lpStream(stream, { maxDataLength: MAX_CONTROL_MESSAGE_BYTES });
    await lp.write(encoder.encode(JSON.stringify(body)), { signal: options.signal });
    const reply = await lp.read({ signal: options.signal });
    await stream.close({ signal: options.signal }).catch(() => {});
    return JSON.parse(decoder.decode(reply.subarray()));
  } catch (error) {
    stream?.abort(error instanceof Error ? error : new Error(String(error)));
    throw new PeerRequestError(peerId, protocol, error instanceof Error ? error.message : String(error), { cause: error });
  }
}

/**
 * Registers a handler for `protocol` that reads one JSON request and writes `respond(request)`'s result as the
 * reply. Bad input (not JSON, too large, too slow) aborts that stream only.
 */
export async function handleJson(
  libp2p: SwarmLibp2p,
  protocol: string,
  respond: (request: unknown, connection: Connection) => Promise<unknown> | unknown,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  try {
    await libp2p.handle(
      protocol,
      async (stream, connection) => {
        const signal = AbortSignal.timeout(timeoutMs);
        try {
          const lp = lpStream(stream, { maxDataLength: MAX_CONTROL_MESSAGE_BYTES });
          const request = await lp.read({ signal });
          let parsed: unknown;
          try {
            parsed = JSON.parse(decoder.decode(request.subarray()));
          } catch {
            parsed = undefined;
          }
          const reply = parsed === undefined ? { ok: false, error: 'malformed request' } : await respond(parsed, connection);
          await lp.write(encoder.encode(JSON.stringify(reply)), { signal });
          await stream.close({ signal });
        } catch (error) {
          stream.abort(error instanceof Error ? error : new Error(String(error)));
        }
      },
      { maxInboundStreams: 64 },
    );
  } catch (cause) {
    throw new SwarmConfigError(`cannot register ${protocol} (is another registry using this node?)`, { cause });
  }
}
