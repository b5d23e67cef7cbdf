/**
 * The message channel over a byte socket (wire/socket-channel.ts): frames back to back, the same validation as on a
 * libp2p stream, a bounded read-ahead, and clear ends.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ChannelClosedError, socketChannel } from '../../src/wire/socket-channel.js';
import { FrameTooLargeError, MalformedMessageError } from '../../src/wire/errors.js';
import { encodeMessage } from '../../src/wire/messages.js';

const cleanup: (() => void)[] = [];
afterEach(() => cleanup.splice(0).forEach((f) => f()));

/** A connected pair of loopback sockets. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((resolve) => client.once('connect', resolve));
  const other = await accepted;
  cleanup.push(() => (client.destroy(), other.destroy(), server.close()));
  return [client, other];
}

const ping = (i: number) => ({ type: 'ping' as const, nonce: i });

describe('socketChannel', () => {
  it('carries messages with tensors both ways, split or joined on the wire', async () => {
    const [a, b] = await pair();
    const left = socketChannel(a);
    const right = socketChannel(b);
    const hidden = new Float32Array(576).map((_, i) => i / 7);
    await left.send({ type: 'forward', requestId: 'x', spanStart: 0, spanEnd: 2 }, { data: hidden, shape: [1, 576], dtype: 'f32' });
    const got = await right.receive();
    expect(got.header).toMatchObject({ type: 'forward', requestId: 'x' });
    expect(got.tensor).toEqual(hidden);
    // three frames in one write, then one frame a byte at a time
    const frames = [0, 1, 2].map((i) => encodeMessage(ping(i)));
    b.write(Buffer.concat(frames));
    for (let i = 0; i < 3; i++) expect((await left.receive()).header).toEqual(ping(i));
    const last = encodeMessage(ping(3));
    for (const byte of last) b.write(Uint8Array.of(byte));
    expect((await left.receive()).header).toEqual(ping(3));
  });

  it('an aborted receive leaves the bytes for the next one', async () => {
    const [a, b] = await pair();
    const left = socketChannel(a);
    const controller = new AbortController();
    const pending = left.receive({ signal: controller.signal });
    const frame = encodeMessage(ping(1));
    b.write(frame.subarray(0, 5));
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort(new Error('gave up'));
    await expect(pending).rejects.toThrow('gave up');
    b.write(frame.subarray(5));
    expect((await left.receive()).header).toEqual(ping(1));
  });

  it('an oversized prefix is FrameTooLargeError once, before any allocation, then the channel is finished', async () => {
    const [a, b] = await pair();
    const left = socketChannel(a, { maxFrameBytes: 1024 });
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(0xfffffff0);
    b.write(prefix);
    await expect(left.receive()).rejects.toBeInstanceOf(FrameTooLargeError);
    await expect(left.receive()).rejects.toBeInstanceOf(ChannelClosedError);
    // a reply can still go out (the server answers FRAME_TOO_LARGE before closing)
    const right = socketChannel(b);
    await left.send(ping(9));
    expect((await right.receive()).header).toEqual(ping(9));
  });

  it('a prefix too short for a frame is malformed, then the channel is finished', async () => {
    const [a, b] = await pair();
    const left = socketChannel(a);
    b.write(Buffer.from([0, 0, 0, 1, 0]));
    await expect(left.receive()).rejects.toBeInstanceOf(MalformedMessageError);
    await expect(left.receive()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('a peer that sends without reading fills its own buffers: we hold about one frame', async () => {
    const [a, b] = await pair();
    const left = socketChannel(a);
    const big = encodeMessage({ type: 'forward', requestId: 'x', spanStart: 0, spanEnd: 2 }, { data: new Float32Array(64 * 576), shape: [64, 576], dtype: 'f32' });
    let written = 0;
    while (b.write(big)) written += big.length; // until the kernel's buffers push back
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(a.isPaused()).toBe(true);
    // what was taken off the socket is bounded by one frame and a few read chunks, not by what was sent
    expect(a.bytesRead).toBeLessThan(big.length * 2 + 256 * 1024);
    expect(written + big.length).toBeGreaterThan(a.bytesRead);
    expect((await left.receive()).header).toMatchObject({ type: 'forward' });
    expect(a.isPaused()).toBe(false);
  });

  it('the peer ending or resetting rejects a waiting receive with ChannelClosedError; isOpen follows', async () => {
    const [a, b] = await pair();
    const left = socketChannel(a);
    expect(left.isOpen).toBe(true);
    const pending = left.receive();
    b.end();
    await expect(pending).rejects.toBeInstanceOf(ChannelClosedError);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(left.isOpen).toBe(false);
    await expect(left.send(ping(1))).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('close ends gracefully: the peer reads what was sent, then the end', async () => {
    const [a, b] = await pair();
    const left = socketChannel(a);
    const right = socketChannel(b);
    await left.send(ping(5));
    const closing = left.close();
    expect((await right.receive()).header).toEqual(ping(5));
    await expect(right.receive()).rejects.toBeInstanceOf(ChannelClosedError);
    await right.close();
    await closing;
    expect(a.destroyed).toBe(true);
  });
});
