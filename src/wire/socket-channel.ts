/**
 * A message channel over a byte socket (a TLS socket of a direct lane, swarm/lanes.ts): the frames of frames.ts
 * back to back, each self-delimited by its u32 prefix, so no second length prefix as on a libp2p stream.
 *
 * Memory is bounded the same way: a prefix above `maxFrameBytes` fails the channel before anything is allocated,
 * and the socket is paused while one whole frame waits unread, so a peer that sends without reading our replies
 * fills its own socket buffers, not our heap.
 */
import type { Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder } from './frames.js';
import { decodeMessage, decodeMessageHeader, encodeMessage } from './messages.js';
import type { MessageChannel } from './channel.js';

/** The byte stream ended or was reset (not a protocol error: there is no one left to answer). */
export class ChannelClosedError extends Error {
  override readonly name = 'ChannelClosedError';
}

interface Waiter {
  resolve(frame: Uint8Array): void;
  reject(error: Error): void;
}

export function socketChannel(socket: Socket, options: { maxFrameBytes?: number; maxTensorElements?: number } = {}): MessageChannel {
  const maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const decoder = new FrameDecoder({ maxFrameBytes });
  let ready: Uint8Array | undefined; // one whole frame nobody has asked for yet
  let waiter: Waiter | undefined;
  let failure: Error | undefined; // the decoder's, reported once (takeFailure)
  let ended: Error | undefined;

  const pull = (): Uint8Array | undefined => {
    if (ready) {
      const frame = ready;
      ready = undefined;
      if (socket.isPaused()) socket.resume();
      return frame;
    }
    return decoder.pull();
  };
  /** The decoder's failure, once; after it the channel only says it is finished. */
  const takeFailure = (): Error => {
    const error = failure!;
    failure = new ChannelClosedError('the byte stream cannot be resynchronised');
    return error;
  };
  const settle = () => {
    if (!failure) {
      try {
        if (waiter) {
          const frame = pull();
          if (frame) {
            const current = waiter;
            waiter = undefined;
            current.resolve(frame);
            return;
          }
        } else if (!ready) {
          ready = decoder.pull(); // read ahead by one frame at most, then let TCP push back
          if (ready) socket.pause();
        }
      } catch (error) {
        failure = error as Error; // a FRAME_TOO_LARGE can still be answered
        socket.pause(); // a failed decoder takes no more bytes
      }
    }
    const current = waiter;
    if (!current || (!failure && !ended)) return;
    waiter = undefined;
    current.reject(failure ? takeFailure() : ended!);
  };
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    settle();
  });
  const finish = (error: Error) => {
    ended ??= error;
    settle();
  };
  socket.on('end', () => finish(new ChannelClosedError('the peer ended the stream')));
  socket.on('close', () => finish(new ChannelClosedError('the stream closed')));
  socket.on('error', (error) => finish(new ChannelClosedError(`the stream failed: ${error.message}`)));

  const nextFrame = (signal?: AbortSignal): Promise<Uint8Array> => {
    if (waiter) return Promise.reject(new Error('a receive is already in progress'));
    if (failure) return Promise.reject(takeFailure());
    return new Promise<Uint8Array>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        // the bytes read so far stay in the decoder for the next receive
        if (waiter === entry) waiter = undefined;
        reject(signal!.reason);
      };
      const entry: Waiter = {
        resolve: (frame) => (signal?.removeEventListener('abort', onAbort), resolve(frame)),
        reject: (error) => (signal?.removeEventListener('abort', onAbort), reject(error)),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiter = entry;
      settle();
    });
  };

  return {
    get isOpen() {
      return !socket.destroyed && socket.writable && ended === undefined;
    },
    async send(header, tensor, opts) {
      if (socket.destroyed || !socket.writable) throw new ChannelClosedError('the stream is closed');
      const frame = encodeMessage(header, tensor, { maxFrameBytes });
      if (socket.write(frame)) return;
      await new Promise<void>((resolve, reject) => {
        const done = (error?: Error) => {
          socket.off('drain', onDrain);
          socket.off('close', onClose);
          opts?.signal?.removeEventListener('abort', onAbort);
          if (error) reject(error);
          else resolve();
        };
        const onDrain = () => done();
        const onClose = () => done(new ChannelClosedError('the stream closed while sending'));
        const onAbort = () => done(opts!.signal!.reason as Error);
        socket.once('drain', onDrain);
        socket.once('close', onClose);
        if (opts?.signal?.aborted) return onAbort();
        opts?.signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    async receive(opts) {
      return decodeMessage(await nextFrame(opts?.signal), { maxFrameBytes, maxTensorElements: options.maxTensorElements });
    },
    async receiveHeader(opts) {
      return decodeMessageHeader(await nextFrame(opts?.signal), { maxFrameBytes, maxTensorElements: options.maxTensorElements });
    },
    async close(opts) {
      if (socket.destroyed) return;
      await new Promise<void>((resolve) => {
        const timer = opts?.signal ? undefined : setTimeout(() => socket.destroy(), 2000);
        const onAbort = () => socket.destroy();
        opts?.signal?.addEventListener('abort', onAbort, { once: true });
        socket.once('close', () => {
          clearTimeout(timer);
          opts?.signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        socket.end();
      });
    },
    abort(error) {
      ended ??= new ChannelClosedError(`aborted: ${error.message}`);
      socket.destroy();
    },
  };
}
