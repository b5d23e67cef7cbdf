/**
 * The block protocol on a direct lane is the same protocol with the same defences: malformed frames are answered and
 * the lane goes on, an oversized prefix is FRAME_TOO_LARGE and closes that lane only, the per-peer stream quota
 * counts lanes under the ticket holder's peer id, and junk at the lane port never reaches the service.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import type { MessageChannel } from '../../src/wire/channel.js';
import { ChannelClosedError, socketChannel } from '../../src/wire/socket-channel.js';
import { encodeMessage, type MessageInput, type TensorInput } from '../../src/wire/messages.js';
import { BLOCK_PROTOCOL } from '../../src/wire/protocols.js';
import { STORIES_GGUF } from '../support/models.js';
import { startTestServer, type TestServer } from '../support/servers.js';

let source: LoadedModelSource;
let t: TestServer;
let H: number;

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  H = source.config.hiddenSize;
  t = await startTestServer(source, { maxStreamsPerPeer: 3 }, {}, 'tcp');
}, 60_000);

afterAll(async () => {
  await t?.stop();
  source?.close();
});

async function lane(): Promise<{ socket: Socket; channel: MessageChannel; request(header: MessageInput, tensor?: TensorInput): Promise<{ header: Record<string, unknown> }>; close(): Promise<void> }> {
  const socket = await t.client.lanes!.dial(t.server.peerId, BLOCK_PROTOCOL, { signal: AbortSignal.timeout(5_000) });
  const channel = socketChannel(socket);
  return {
    socket,
    channel,
    async request(header, tensor) {
      await channel.send(header, tensor);
      return (await channel.receive({ signal: AbortSignal.timeout(10_000) })) as never;
    },
    close: () => channel.close(),
  };
}

const hidden = (): TensorInput => ({ data: new Float32Array(H).fill(0.1), shape: [1, H], dtype: 'f32' });
const open = (sessionId: string): MessageInput => ({ type: 'open', sessionId, maxLength: 8, spanStart: 0, spanEnd: 5, codec: 'f32' });

describe('block protocol on a lane', () => {
  it('answers a malformed frame and goes on; FRAME_TOO_LARGE closes that lane only', async () => {
    const survivor = await lane();
    const o = await survivor.request(open('survivor'));
    expect(o.header).toMatchObject({ type: 'opened' });
    const victim = await lane();
    const channel = victim.channel;
    // a frame whose header is not JSON
    const junk = Buffer.alloc(4 + 2 + 3);
    junk.writeUInt32BE(5, 0);
    junk.writeUInt16BE(3, 4);
    junk.write('{x]', 6);
    victim.socket.write(junk);
    const first = await channel.receive({ signal: AbortSignal.timeout(10_000) });
    expect(first.header).toMatchObject({ type: 'error', code: 'MALFORMED' });
    await channel.send(open('victim'));
    expect((await channel.receive({ signal: AbortSignal.timeout(10_000) })).header).toMatchObject({ type: 'opened' });
    // 1 GiB declared, a little sent
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(1 << 30);
    victim.socket.write(Buffer.concat([prefix, Buffer.alloc(1024)]));
        const refused = await channel.receive({ signal: AbortSignal.timeout(10_000) });
    expect(refused.header).toMatchObject({ type: 'error', code: 'FRAME_TOO_LARGE' });
    await expect(channel.receive({ signal: AbortSignal.timeout(10_000) })).rejects.toBeInstanceOf(ChannelClosedError);
    for (let i = 0; i < 50 && t.server.service.activeSessions !== 1; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(t.server.service.activeSessions).toBe(1);
    const step = await survivor.request({ type: 'step', sessionId: 'survivor', stepId: 0, position: 0, tokens: 1 }, hidden());
    expect(step.header).toMatchObject({ type: 'stepResult', position: 0 });
    await survivor.close();
  });

  it('counts lanes against the ticket holder\'s stream quota', async () => {
    const lanes = [await lane(), await lane(), await lane()];
    for (const [i, l] of lanes.entries()) expect((await l.request(open(`q${i}`))).header).toMatchObject({ type: 'opened' });
    const over = await lane();
    expect((await over.request(open('q3'))).header).toMatchObject({ type: 'error', code: 'QUOTA_EXCEEDED' });
    for (const l of lanes) await l.close();
  });

  it('junk at the lane port fails the handshake and never reaches the service', async () => {
    const before = t.server.service.activeStreams;
    const port = t.node.lanes!.port!;
    const junk = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => junk.once('connect', resolve));
    junk.write(encodeMessage(open('sneaky')));
    await new Promise((resolve) => junk.once('close', resolve));
    expect(t.server.service.activeStreams).toBe(before);
    const honest = await lane();
    expect((await honest.request(open('after-junk'))).header).toMatchObject({ type: 'opened' });
    await honest.close();
  });
});
