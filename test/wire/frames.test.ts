import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FrameDecoder,
  allocateFrame,
  decodeFrames,
  encodeFrame,
  splitFrame,
} from '../../src/wire/frames.js';
import { FrameTooLargeError, MalformedMessageError, TruncatedFrameError } from '../../src/wire/errors.js';

const text = (s: string) => new TextEncoder().encode(s);

function frameOf(header: string, payloadLength: number, fill = 0): Uint8Array {
  const payload = new Uint8Array(payloadLength);
  for (let i = 0; i < payloadLength; i++) payload[i] = (fill + i * 31) & 0xff;
  return encodeFrame(text(header), payload);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('frame layout', () => {
  it('is [u32 BE length][u16 BE header length][header][payload]', () => {
    const frame = encodeFrame(text('{"a":1}'), Uint8Array.from([9, 8, 7]));
    expect([...frame.subarray(0, 6)]).toEqual([0, 0, 0, 2 + 7 + 3, 0, 7]);
    expect(new TextDecoder().decode(frame.subarray(6, 13))).toBe('{"a":1}');
    expect([...frame.subarray(13)]).toEqual([9, 8, 7]);
    const { header, payload } = splitFrame(frame);
    expect(new TextDecoder().decode(header)).toBe('{"a":1}');
    expect([...payload]).toEqual([9, 8, 7]);
  });

  it('allocateFrame exposes the payload region to fill in place', () => {
    const { frame, payload } = allocateFrame(text('{}'), 4);
    payload.set([1, 2, 3, 4]);
    expect([...splitFrame(frame).payload]).toEqual([1, 2, 3, 4]);
    expect(frame.length).toBe(4 + 2 + 2 + 4);
  });

  it('refuses frames over the limit on both ends', () => {
    expect(() => allocateFrame(text('{}'), 100, { maxFrameBytes: 64 })).toThrow(FrameTooLargeError);
    expect(() => encodeFrame(new Uint8Array(70_000))).toThrow(MalformedMessageError); // u16 header length
    const frame = frameOf('{}', 100);
    expect(() => splitFrame(frame, { maxFrameBytes: 64 })).toThrow(FrameTooLargeError);
  });

  it('splitFrame validates the prefix and the header length', () => {
    const frame = frameOf('{"x":true}', 10);
    expect(() => splitFrame(frame.subarray(0, 5))).toThrow(MalformedMessageError);
    expect(() => splitFrame(frame.subarray(0, frame.length - 1))).toThrow(/length prefix says/);
    const lying = frame.slice();
    lying[5] = 200; // header length beyond the frame
    expect(() => splitFrame(lying)).toThrow(/header length 200 exceeds/);
  });
});

describe('FrameDecoder', () => {
  const frames = [frameOf('{"type":"ping","nonce":1}', 0), frameOf('{"h":2}', 37, 5), frameOf('', 0), frameOf('{}', 300, 9)];
  const stream = concat(frames);

  it('reassembles a frame split at every byte offset', () => {
    for (const frame of frames) {
      for (let cut = 0; cut <= frame.length; cut++) {
        const decoder = new FrameDecoder();
        const got = [...decoder.decode(frame.subarray(0, cut)), ...decoder.decode(frame.subarray(cut))];
        expect(got).toEqual([frame]);
        expect(decoder.bufferedBytes).toBe(0);
        decoder.end();
      }
    }
  });

  it('reassembles a stream cut at every pair of offsets', () => {
    const small = concat(frames.slice(0, 3));
    for (let a = 0; a <= small.length; a++) {
      for (let b = a; b <= small.length; b++) {
        const decoder = new FrameDecoder();
        const got = [a, b, small.length].flatMap((end, i) => decoder.decode(small.subarray([0, a, b][i], end)));
        expect(got).toEqual(frames.slice(0, 3));
      }
    }
  });

  it('handles one byte at a time, random chunking, and chunk lists', () => {
    const one = new FrameDecoder();
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) got.push(...one.decode(stream.subarray(i, i + 1)));
    expect(got).toEqual(frames);

    let seed = 7;
    for (let trial = 0; trial < 50; trial++) {
      const decoder = new FrameDecoder();
      const out: Uint8Array[] = [];
      for (let o = 0; o < stream.length; ) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        const size = seed % 97;
        // A Uint8ArrayList-like: an iterable of several Uint8Arrays.
        const chunk = stream.subarray(o, o + size);
        const parts = [chunk.subarray(0, size >> 1), chunk.subarray(size >> 1)];
        decoder.push(parts);
        out.push(...decoder.frames());
        o += size;
      }
      expect(out).toEqual(frames);
    }
  });

  it('returns owned copies, not views of the input chunks', () => {
    const frame = frameOf('{}', 8);
    const decoder = new FrameDecoder();
    const [out] = decoder.decode(frame);
    expect(out).not.toBe(frame);
    expect(out!.buffer).not.toBe(frame.buffer);
    frame.fill(0);
    expect(out![7]).not.toBe(0);
  });

  it('rejects a garbage length prefix from its 4 bytes alone', () => {
    const decoder = new FrameDecoder();
    decoder.push(Uint8Array.from([0xff, 0xff, 0xff]));
    expect(decoder.pull()).toBeUndefined();
    decoder.push(Uint8Array.from([0xff]));
    expect(() => decoder.pull()).toThrow(FrameTooLargeError);
    // The decoder stays failed: the stream cannot be resynchronised.
    expect(() => decoder.decode(frameOf('{}', 0))).toThrow(FrameTooLargeError);
    expect(() => decoder.end()).toThrow(FrameTooLargeError);
    const err = (() => {
      try {
        new FrameDecoder().decode(Uint8Array.from([0x7f, 0, 0, 0]));
      } catch (e) {
        return e as FrameTooLargeError;
      }
    })()!;
    expect(err.code).toBe('FRAME_TOO_LARGE');
    expect(err.frameBytes).toBe(0x7f000000 + 4);
    expect(err.maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
  });

  it('yields the frames before a bad prefix, then throws', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1000 });
    decoder.push(concat([frames[0]!, Uint8Array.from([0, 0, 0x10, 0])]));
    const it = decoder.frames();
    expect(it.next().value).toEqual(frames[0]);
    expect(() => it.next()).toThrow(FrameTooLargeError);
  });

  it('enforces a configurable limit and a minimum length', () => {
    const frame = frameOf('{}', 100);
    expect(() => new FrameDecoder({ maxFrameBytes: frame.length - 1 }).decode(frame)).toThrow(FrameTooLargeError);
    expect(new FrameDecoder({ maxFrameBytes: frame.length }).decode(frame)).toEqual([frame]);
    expect(() => new FrameDecoder().decode(Uint8Array.from([0, 0, 0, 1, 0]))).toThrow(MalformedMessageError);
    expect(() => new FrameDecoder({ maxFrameBytes: 3 })).toThrow(RangeError);
  });

  it('end() reports a truncated frame', () => {
    const frame = frameOf('{}', 20);
    for (const cut of [1, 4, 6, frame.length - 1]) {
      const decoder = new FrameDecoder();
      expect(decoder.decode(frame.subarray(0, cut))).toEqual([]);
      expect(decoder.bufferedBytes).toBe(cut);
      expect(() => decoder.end()).toThrow(TruncatedFrameError);
    }
    const clean = new FrameDecoder();
    clean.decode(frame);
    expect(() => clean.end()).not.toThrow();
  });

  it('waits (without hanging or allocating) on a large declared length', () => {
    const decoder = new FrameDecoder();
    const before = process.memoryUsage().arrayBuffers;
    decoder.push(Uint8Array.from([0x03, 0xc0, 0, 0, 0, 2, 0x7b, 0x7d])); // declares 60 MiB, under the 64 MiB limit
    expect(decoder.pull()).toBeUndefined();
    expect(decoder.bufferedBytes).toBe(8);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    expect(() => decoder.end()).toThrow(TruncatedFrameError);
  });
});

describe('decodeFrames', () => {
  it('reads frames from an async source and reports truncation', async () => {
    const frames = [frameOf('{"a":1}', 3), frameOf('{"b":2}', 0)];
    const all = concat(frames);
    async function* source(data: Uint8Array) {
      for (let i = 0; i < data.length; i += 5) yield data.subarray(i, i + 5);
    }
    const got: Uint8Array[] = [];
    for await (const frame of decodeFrames(source(all))) got.push(frame);
    expect(got).toEqual(frames);
    const partial: Uint8Array[] = [];
    await expect(async () => {
      for await (const frame of decodeFrames(source(all.subarray(0, all.length - 2)))) partial.push(frame);
    }).rejects.toThrow(TruncatedFrameError);
    expect(partial).toEqual([frames[0]]);
  });
});
