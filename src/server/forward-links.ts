/**
 * Server-to-server forwarding: this server's outbound block-protocol streams to the next hops its clients named.
 * One stream per next peer, reused by every session forwarded there; pushes on it are serialized (request, then its
 * `pushed` reply, as on every block stream). A push that fails in any way (dial, stream, refusal, timeout) drops that
 * stream and reports false: the client then sends the step to that hop itself, so forwarding never decides an outcome,
 * it only saves round trips.
 */
import type { Libp2p } from '@libp2p/interface';
import { BLOCK_PROTOCOL, BLOCK_STREAMS_PER_PEER } from '../wire/protocols.js';
import type { MessageChannel } from '../wire/channel.js';
import { dialChannel } from '../swarm/dial-channel.js';
import type { LaneDialer } from '../swarm/lanes.js';
import type { NextHop, TensorInput } from '../wire/messages.js';
import { DEFAULT_FORWARD_TIMEOUT_MS, MAX_FORWARD_LINKS } from './defaults.js';

/** Opens a block-protocol channel to `peerId` (merging `addrs` into the peer store first). */
export type BlockDialer = (peerId: string, addrs: readonly string[], options: { signal: AbortSignal; maxFrameBytes?: number }) => Promise<MessageChannel>;

/**
 * The dialer of a libp2p node: addresses named by the client are merged into its peer store first, then a direct
 * lane is tried (when the node has lanes) and a libp2p stream is the fallback.
 */
export function blockDialer(libp2p: Pick<Libp2p, 'dialProtocol' | 'peerStore'>, lanes?: LaneDialer): BlockDialer {
  return async (peerId, addrs, { signal, maxFrameBytes }) =>
    (await dialChannel(libp2p, peerId, BLOCK_PROTOCOL, { signal, addrs, lanes, maxFrameBytes, maxOutboundStreams: BLOCK_STREAMS_PER_PEER })).channel;
}

export interface PushRequest {
  /** The client that owns the session on the next hop. */
  readonly client: string;
  readonly position: number;
  readonly tokens: number;
  readonly tensor: TensorInput;
}

interface Link {
  /** Resolves to the channel once dialed. */
  readonly opening: Promise<MessageChannel>;
  /** The channel, once open. */
  channel?: MessageChannel;
  /** Settles when the latest push on this link is answered: pushes go one after another. */
  tail: Promise<unknown>;
  /** Pushes started and not yet answered. */
  pending: number;
}

export class ForwardLinks {
  private readonly links = new Map<string, Link>();
  private closed = false;

  constructor(
    private readonly dial: BlockDialer,
    private readonly options: { timeoutMs?: number; maxFrameBytes?: number } = {},
  ) {}

  /**
   * Pushes a step to `next[0]` (naming `next[1..]` as its own next hops). Resolves true once that server accepted it
   * (`pushed`), false on any failure. Never throws. On an open, idle link the frame is written before this returns,
   * so work the caller does after it (signing the attestation) is off the chain's critical path.
   */
  async push(next: readonly NextHop[], request: PushRequest): Promise<boolean> {
    const [target, ...rest] = next;
    if (!target || this.closed) return false;
    const signal = AbortSignal.timeout(this.options.timeoutMs ?? DEFAULT_FORWARD_TIMEOUT_MS);
    const link = this.link(target, signal);
    const exchange = async (channel: MessageChannel): Promise<boolean> => {
      await channel.send(
        { type: 'push', client: request.client, sessionId: target.sessionId, stepId: target.stepId, position: request.position, tokens: request.tokens, ...(rest.length > 0 ? { next: rest } : {}) },
        request.tensor,
        { signal },
      );
      const reply = await channel.receive({ signal });
      return reply.header.type === 'pushed' && reply.header.sessionId === target.sessionId && reply.header.stepId === target.stepId;
    };
    const run = link.channel && link.pending === 0 ? exchange(link.channel) : link.tail.then(() => link.opening).then(exchange);
    link.pending++;
    link.tail = run.catch(() => {});
    const accepted = await run.catch(() => false);
    link.pending--;
    if (!accepted) this.drop(target.peerId, link);
    return accepted;
  }

  /** Closes every link. */
  close(): void {
    this.closed = true;
    for (const [peerId, link] of [...this.links]) this.drop(peerId, link);
    this.links.clear();
  }

  private link(target: NextHop, signal: AbortSignal): Link {
    const existing = this.links.get(target.peerId);
    if (existing) {
      // most recently used last, so the first entry is the one to evict
      this.links.delete(target.peerId);
      this.links.set(target.peerId, existing);
      return existing;
    }
    if (this.links.size >= MAX_FORWARD_LINKS) {
      const [oldest, link] = this.links.entries().next().value!;
      this.drop(oldest, link, 'too many forward links');
    }
    const opening = this.dial(target.peerId, target.addrs ?? [], { signal, maxFrameBytes: this.options.maxFrameBytes });
    const link: Link = { opening, tail: opening, pending: 0 };
    opening.then(
      (channel) => (link.channel = channel),
      () => {
        if (this.links.get(target.peerId) === link) this.links.delete(target.peerId);
      },
    );
    this.links.set(target.peerId, link);
    return link;
  }

  private drop(peerId: string, link: Link, why = 'forward link dropped'): void {
    if (this.links.get(peerId) === link) this.links.delete(peerId);
    link.opening.then((channel) => channel.abort(new Error(why)), () => {});
  }
}
