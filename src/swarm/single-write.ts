/**
 * One socket write per encrypted message.
 *
 * Noise hands each encrypted message to the transport as a list of chunks (length prefix, one ciphertext piece per
 * plaintext chunk, tag), and the TCP transport writes every chunk with its own `socket.write`. With Nagle off, that is
 * five or more TCP segments per message, and a peer in another process wakes up, reads and decrypts piecemeal for
 * each of them: much of what a loopback hop used to cost (bench/hop-probe.ts --processes 2). Joining the chunks
 * first (a copy of a few KiB) sends each message as one segment.
 */
import type { ConnectionEncrypter, MessageStream } from '@libp2p/interface';

/** Makes `connection.send` pass a multi-chunk list on as one contiguous buffer. Returns the same connection. */
export function joinChunksOnSend<T extends MessageStream>(connection: T): T {
  const send = connection.send.bind(connection);
  // subarray() of a one-chunk list is that chunk, not a copy
  connection.send = (data: Parameters<MessageStream['send']>[0]) => send(data instanceof Uint8Array ? data : data.subarray());
  return connection;
}

/** Wraps a connection encrypter factory so that the connection beneath it gets one write per message. */
export function singleWriteEncrypter<C>(factory: (components: C) => ConnectionEncrypter): (components: C) => ConnectionEncrypter {
  return (components) => {
    const inner = factory(components);
    return new Proxy(inner, {
      get(target, property, receiver) {
        if (property === 'secureInbound') return (connection: MessageStream, options?: object) => target.secureInbound(joinChunksOnSend(connection), options);
        if (property === 'secureOutbound') return (connection: MessageStream, options?: object) => target.secureOutbound(joinChunksOnSend(connection), options);
        return Reflect.get(target, property, receiver);
      },
    });
  };
}
