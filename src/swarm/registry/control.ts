/**
 * One-shot JSON request/response over a libp2p stream: the client writes one length-prefixed JSON message, the
 * server answers with one, both close. Used by the control protocols (announce, heartbeat); the protocol's table
 * entry (wire/protocols.ts) gives its id and message size limit.
 */
import { lpStream } from '@libp2p/utils';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Connection, Stream } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { toPeerError } from '../../errors.js';
import type { ProtocolSpec } from '../../wire/protocols.js';
import type { SwarmLibp2p } from '../node.js';
import { MalformedRequestError, PeerRequestError, SwarmConfigError } from '../errors.js';
import type { ControlReply } from './messages.js';
import { CONTROL_REQUEST_TIMEOUT_MS } from './context.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export interface RequestOptions {
  signal?: AbortSignal;
  /** Addresses to merge into the peer store before dialing (e.g. from a provider record). */
  addrs?: Multiaddr[];
}

/** Sends `body` to `peerId` on `protocol` and returns the parsed JSON reply. Throws PeerRequestError. */
export async function requestJson(libp2p: SwarmLibp2p, peerId: string, protocol: ProtocolSpec, body: unknown, options: RequestOptions = {}): Promise<unknown> {
  let stream: Stream | undefined;
  try {
    const target = peerIdFromString(peerId);
    if (options.addrs && options.addrs.length > 0) await libp2p.peerStore.merge(target, { multiaddrs: options.addrs });
    stream = await libp2p.dialProtocol(target, protocol.id, { signal: options.signal });
    const lp = lpStream(stream, { maxDataLength: protocol.maxMessageBytes });
    await lp.write(encoder.encode(JSON.stringify(body)), { signal: options.signal });
    const reply = await lp.read({ signal: options.signal });
    await stream.close({ signal: options.signal }).catch(() => {});
    return JSON.parse(decoder.decode(reply.subarray()));
  } catch (error) {
    stream?.abort(error instanceof Error ? error : new Error(String(error)));
    throw new PeerRequestError(peerId, protocol.id, error instanceof Error ? error.message : String(error), { cause: error });
  }
}

/**
 * Registers a handler for `protocol` that reads one JSON request and replies `{ok: true, envelope}` with what
 * `respond` returns, or `{ok: false, error: toPeerError(e)}` when it throws (so only our own errors' text leaves the
 * process). Bad input (not JSON, too large, too slow) is answered or aborts that stream only.
 */
export async function handleJson(libp2p: SwarmLibp2p, protocol: ProtocolSpec, respond: (request: unknown, connection: Connection) => Promise<unknown>): Promise<void> {
  const answer = async (bytes: Uint8Array, connection: Connection): Promise<ControlReply> => {
    try {
      let request: unknown;
      try {
        request = JSON.parse(decoder.decode(bytes));
      } catch {
        throw new MalformedRequestError('not UTF-8 JSON');
      }
      return { ok: true, envelope: await respond(request, connection) };
    } catch (error) {
      return { ok: false, error: toPeerError(error) };
    }
  };
  try {
    await libp2p.handle(
      protocol.id,
      async (stream, connection) => {
        const signal = AbortSignal.timeout(CONTROL_REQUEST_TIMEOUT_MS);
        try {
          const lp = lpStream(stream, { maxDataLength: protocol.maxMessageBytes });
          const request = await lp.read({ signal });
          await lp.write(encoder.encode(JSON.stringify(await answer(request.subarray(), connection))), { signal });
          await stream.close({ signal });
        } catch (error) {
          stream.abort(error instanceof Error ? error : new Error(String(error)));
        }
      },
      { maxInboundStreams: 64 },
    );
  } catch (cause) {
    throw new SwarmConfigError(`cannot register ${protocol.id} (is another service already answering it on this node?)`, { cause });
  }
}
