/**
 * A message channel over one libp2p stream: validated Corolla messages in, validated messages out. Each frame (see
 * frames.ts) travels as one length-prefixed chunk, so a peer can never make us buffer past `maxFrameBytes`.
 * socket-channel.ts is the same over a direct lane's socket.
 */
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { DEFAULT_MAX_FRAME_BYTES } from './frames.js';
import { decodeMessage, decodeMessageHeader, encodeMessage, type DecodedMessage, type MessageInput, type PendingMessage, type TensorInput } from './messages.js';

export interface MessageChannel {
  send(header: MessageInput, tensor?: TensorInput, options?: { signal?: AbortSignal }): Promise<void>;
  /** The next message; throws a CorollaError for a malformed one, and rejects when the stream ends. */
  receive(options?: { signal?: AbortSignal }): Promise<DecodedMessage>;
  /** The next message with its header validated and its tensor not yet decoded (see decodeMessagePayload). */
  receiveHeader(options?: { signal?: AbortSignal }): Promise<PendingMessage>;
  /** Ends our side gracefully (the peer reads what was sent), giving up at `signal`. */
  close(options?: { signal?: AbortSignal }): Promise<void>;
  abort(error: Error): void;
  /** False once the stream ended, was reset or closed. */
  readonly isOpen: boolean;
}

export function messageChannel(stream: Stream, options: { maxFrameBytes?: number; maxTensorElements?: number } = {}): MessageChannel {
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const lp = lpStream(stream, { maxDataLength: maxFrameBytes + 8, maxBufferSize: maxFrameBytes + 64 });
  return {
    async send(header, tensor, opts) {
      await lp.write(encodeMessage(header, tensor, { maxFrameBytes }), { signal: opts?.signal });
    },
    async receive(opts) {
      const chunk = await lp.read({ signal: opts?.signal });
      return decodeMessage(chunk.subarray(), { maxFrameBytes, maxTensorElements: options.maxTensorElements });
    },
    async receiveHeader(opts) {
      const chunk = await lp.read({ signal: opts?.signal });
      return decodeMessageHeader(chunk.subarray(), { maxFrameBytes, maxTensorElements: options.maxTensorElements });
    },
    async close(opts) {
      await stream.close({ signal: opts?.signal }).catch(() => stream.abort(new Error('close failed')));
    },
    get isOpen() {
      return stream.status === 'open';
    },
    abort(error) {
      stream.abort(error);
    },
  };
}
