/**
 * One way to reach a peer's message protocol (the block protocol): a direct lane where the peer offers one
 * (lanes.ts), a libp2p stream otherwise. Clients use it for their hops, servers for the next hops they forward to.
 */
import type { Libp2p } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { messageChannel, type MessageChannel } from '../wire/channel.js';
import { socketChannel } from '../wire/socket-channel.js';
import type { LaneDialer } from './lanes.js';

export interface DialChannelOptions {
  readonly signal: AbortSignal;
  /** Addresses of the peer (from its record) to merge into the peer store before dialing; bad ones are skipped. */
  readonly addrs?: readonly string[];
  /** Lanes to try first; without them, a libp2p stream. */
  readonly lanes?: LaneDialer;
  readonly maxFrameBytes?: number;
  /** libp2p's cap on outbound streams of this protocol to one peer. */
  readonly maxOutboundStreams?: number;
}

/** A channel to `peerId` for `protocol`, and whether it is a lane. Throws what libp2p's dial throws. */
export async function dialChannel(libp2p: Pick<Libp2p, 'dialProtocol' | 'peerStore'>, peerId: string, protocol: string, options: DialChannelOptions): Promise<{ channel: MessageChannel; lane: boolean }> {
  const { signal, maxFrameBytes } = options;
  const peer = peerIdFromString(peerId);
  const multiaddrs = (options.addrs ?? []).flatMap((addr): Multiaddr[] => {
    try {
      return [multiaddr(addr)];
    } catch {
      return [];
    }
  });
  if (multiaddrs.length > 0) await libp2p.peerStore.merge(peer, { multiaddrs });
  if (options.lanes) {
    try {
      return { channel: socketChannel(await options.lanes.dial(peerId, protocol, { signal }), { maxFrameBytes }), lane: true };
    } catch (error) {
      if (signal.aborted) throw error; // the caller gave up; otherwise a libp2p stream will do
    }
  }
  const stream = await libp2p.dialProtocol(peer, protocol, { signal, ...(options.maxOutboundStreams !== undefined ? { maxOutboundStreams: options.maxOutboundStreams } : {}) });
  return { channel: messageChannel(stream, { maxFrameBytes }), lane: false };
}
