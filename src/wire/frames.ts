/**
 * Framing of messages over a byte stream (a libp2p stream read with `byteStream`, a TCP socket, …).
 *
 * Frame layout (all integers big-endian):
 *
 *     offset 0   u32  L            length of everything after this field (so the frame is 4 + L bytes)
 *     offset 4   u16  H            length of the header (H ≤ L − 2)
 *     offset 6   H bytes           header: UTF-8 JSON (see messages.ts)
 *     offset 6+H L − 2 − H bytes   payload: binary tensor data (see tensor-codec.ts), possibly empty
 *
 * A "frame" in this API is always the whole thing, length prefix included: `encodeFrame` returns it, `FrameDecoder`
 * yields it, `splitFrame` and `decodeMessage` take it. The limit `maxFrameBytes` bounds 4 + L and is checked from
 * the prefix alone, before any allocation.
 */
import { PROTOCOLS } from './protocols.js';
import { FrameTooLargeError, MalformedMessageError, TinyMessageError, TruncatedFrameError } from './errors.js';

/** Bytes of the u32 length prefix. */
export const FRAME_PREFIX_BYTES = 4;
/** Bytes of the u16 header length. */
export const HEADER_LENGTH_BYTES = 2;
/** Default cap on a whole frame (prefix included): 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = PROTOCOLS.block.maxMessageBytes;
/** Hard ceiling of the format: L is a u32. */
export const MAX_FRAME_BYTES_FORMAT = FRAME_PREFIX_BYTES + 0xffffffff;

export interface FrameOptions {
  /** Cap on a whole frame in bytes, prefix included. Default 64 MiB. */
  readonly maxFrameBytes?: number;
}

/** A chunk from a byte stream: a Uint8Array, or a list of them (e.g. a Uint8ArrayList from @libp2p/utils). */
export type ByteChunk = Uint8Array | Iterable<Uint8Array>;

function maxFrameBytesOf(options: FrameOptions): number {
  const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(max) || max < FRAME_PREFIX_BYTES + HEADER_LENGTH_BYTES) {
    throw new RangeError(`maxFrameBytes must be an integer ≥ 6, got ${max}`);
  }
  return Math.min(max, MAX_FRAME_BYTES_FORMAT);
}

/**
 * Allocates a frame for `header` and a payload of `payloadBytes` bytes, writes the prefix, the header length and
 * the header, and returns the frame with a view of its (zeroed) payload region for the caller to fill in place.
 */
export function allocateFrame(
  header: Uint8Array,
  payloadBytes: number,
  options: FrameOptions = {},
): { frame: Uint8Array; payload: Uint8Array } {
  const max = maxFrameBytesOf(options);
  if (header.length > 0xffff) {
    throw new MalformedMessageError(`header of ${header.length} bytes does not fit the u16 header length`);
  }
  if (!Number.isSafeInteger(payloadBytes) || payloadBytes < 0) {
    throw new RangeError(`payloadBytes must be a non-negative integer, got ${payloadBytes}`);
  }
  const total = FRAME_PREFIX_BYTES + HEADER_LENGTH_BYTES + header.length + payloadBytes;
  if (total > max) throw new FrameTooLargeError(total, max);
  const frame = new Uint8Array(total);
  const view = new DataView(frame.buffer);
  view.setUint32(0, total - FRAME_PREFIX_BYTES, false);
  view.setUint16(FRAME_PREFIX_BYTES, header.length, false);
  frame.set(header, FRAME_PREFIX_BYTES + HEADER_LENGTH_BYTES);
  const payloadStart = FRAME_PREFIX_BYTES + HEADER_LENGTH_BYTES + header.length;
  return { frame, payload: frame.subarray(payloadStart) };
}

/** Builds a frame from header bytes and an optional payload. */
export function encodeFrame(header: Uint8Array, payload?: Uint8Array, options: FrameOptions = {}): Uint8Array {
  const { frame, payload: region } = allocateFrame(header, payload?.length ?? 0, options);
  if (payload) region.set(payload);
  return frame;
}

/**
 * Splits a whole frame into views of its header and payload (no copies), validating the prefix against the frame's
 * length, the size limit, and the header length against the body. Throws MalformedMessageError or
 * FrameTooLargeError.
 */
export function splitFrame(frame: Uint8Array, options: FrameOptions = {}): { header: Uint8Array; payload: Uint8Array } {
  const max = maxFrameBytesOf(options);
  if (frame.length < FRAME_PREFIX_BYTES + HEADER_LENGTH_BYTES) {
    throw new TinyMessageError(`frame of ${frame.length} bytes is shorter than the 6-byte minimum`);
  }
  if (frame.length > max) throw new FrameTooLargeError(frame.length, max);
  const declared = readU32BE(frame, 0);
  if (declared !== frame.length - FRAME_PREFIX_BYTES) {
    throw new MalformedMessageError(
      `length prefix says ${declared} bytes follow, but the frame has ${frame.length - FRAME_PREFIX_BYTES}`,
    );
  }
  const headerLength = (frame[4]! << 8) | frame[5]!;
  const headerEnd = FRAME_PREFIX_BYTES + HEADER_LENGTH_BYTES + headerLength;
  if (headerEnd > frame.length) {
    throw new MalformedMessageError(
      `header length ${headerLength} exceeds the ${frame.length - 6} bytes left in the frame`,
    );
  }
  return { header: frame.subarray(6, headerEnd), payload: frame.subarray(headerEnd) };
}

function readU32BE(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

/**
 * Incremental frame decoder. Push chunks of any size as they arrive (`push`), then pull the frames they complete
 * (`pull` or `frames()`). Each frame is a fresh Uint8Array that owns its memory (prefix included), allocated only
 * when all its bytes are in: memory held never exceeds the bytes received. A length prefix above `maxFrameBytes`
 * throws FrameTooLargeError as soon as its 4 bytes are in; a prefix too small to hold the u16 header length throws
 * MalformedMessageError. After such an error the decoder is failed: every later pull rethrows it (a byte stream
 * cannot be resynchronised; close it). Frames completed before the bad prefix are still returned first.
 *
 *     const decoder = new FrameDecoder();
 *     for await (const chunk of stream) {
 *       decoder.push(chunk);
 *       for (const frame of decoder.frames()) handle(decodeMessage(frame));
 *     }
 *     decoder.end(); // throws TruncatedFrameError if the stream stopped inside a frame
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  private readonly chunks: (Uint8Array | undefined)[] = [];
  /** Index of the first unconsumed chunk in `chunks`. */
  private head = 0;
  /** Read offset inside chunks[head]. */
  private headOffset = 0;
  /** Bytes pushed but not yet consumed into a prefix or a frame. */
  private queued = 0;
  private readonly prefix = new Uint8Array(FRAME_PREFIX_BYTES);
  private prefixFilled = 0;
  /** Size of the frame whose prefix has been read (0 while reading a prefix). */
  private expected = 0;
  private failure: Error | undefined;

  constructor(options: FrameOptions = {}) {
    this.maxFrameBytes = maxFrameBytesOf(options);
  }

  /** Bytes held that belong to no complete frame yet. */
  get bufferedBytes(): number {
    return this.queued + this.prefixFilled;
  }

  /** Appends a chunk. Chunks are referenced, not copied, until consumed: do not mutate them after pushing. */
  push(chunk: ByteChunk): void {
    if (chunk instanceof Uint8Array) {
      if (chunk.length > 0) {
        this.chunks.push(chunk);
        this.queued += chunk.length;
      }
      return;
    }
    for (const part of chunk) this.push(part);
  }

  /**
   * Returns the next complete frame, or undefined when more bytes are needed. The frame's buffer is allocated only
   * once all of its bytes have arrived, so a lying length prefix below the limit costs no memory either.
   */
  pull(): Uint8Array | undefined {
    if (this.failure) throw this.failure;
    if (this.expected === 0) {
      while (this.prefixFilled < FRAME_PREFIX_BYTES && this.queued > 0) {
        this.prefixFilled += this.take(this.prefix, this.prefixFilled, FRAME_PREFIX_BYTES - this.prefixFilled);
      }
      if (this.prefixFilled < FRAME_PREFIX_BYTES) return undefined;
      const following = readU32BE(this.prefix, 0);
      const total = FRAME_PREFIX_BYTES + following;
      if (total > this.maxFrameBytes) return this.fail(new FrameTooLargeError(total, this.maxFrameBytes));
      if (following < HEADER_LENGTH_BYTES) {
        return this.fail(new MalformedMessageError(`frame length ${following} cannot hold the 2-byte header length`));
      }
      this.expected = total;
    }
    if (this.queued < this.expected - FRAME_PREFIX_BYTES) return undefined;
    const frame = new Uint8Array(this.expected);
    frame.set(this.prefix, 0);
    let filled = FRAME_PREFIX_BYTES;
    while (filled < frame.length) filled += this.take(frame, filled, frame.length - filled);
    this.expected = 0;
    this.prefixFilled = 0;
    return frame;
  }

  /** Yields every frame that the bytes pushed so far complete. */
  *frames(): Generator<Uint8Array, void, undefined> {
    for (let frame = this.pull(); frame; frame = this.pull()) yield frame;
  }

  /** Pushes a chunk and returns the frames it completes (convenience over push + frames). */
  decode(chunk: ByteChunk): Uint8Array[] {
    this.push(chunk);
    return [...this.frames()];
  }

  /**
   * Declares the end of the stream; call it once `frames()` is exhausted. Throws TruncatedFrameError if bytes of an
   * incomplete frame remain (or the stored failure, if the decoder already failed).
   */
  end(): void {
    if (this.failure) throw this.failure;
    const pending = this.bufferedBytes;
    if (pending === 0) return;
    return this.fail(new TruncatedFrameError(pending, this.expected || undefined));
  }

  private fail(error: Error): never {
    this.failure = error;
    this.chunks.length = 0;
    this.head = 0;
    this.headOffset = 0;
    this.queued = 0;
    throw error;
  }

  /** Copies up to `max` queued bytes into `dst` at `offset`; returns the count. */
  private take(dst: Uint8Array, offset: number, max: number): number {
    const chunk = this.chunks[this.head]!;
    const available = chunk.length - this.headOffset;
    const count = Math.min(available, max);
    if (count === chunk.length && this.headOffset === 0) dst.set(chunk, offset);
    else dst.set(chunk.subarray(this.headOffset, this.headOffset + count), offset);
    this.headOffset += count;
    this.queued -= count;
    if (this.headOffset === chunk.length) {
      this.chunks[this.head] = undefined; // release it early
      this.head++;
      this.headOffset = 0;
      if (this.head > 64 && this.head * 2 > this.chunks.length) {
        this.chunks.splice(0, this.head);
        this.head = 0;
      }
    }
    return count;
  }
}

/**
 * Reads frames from an async (or sync) iterable of chunks, such as a libp2p `stream` or a Node socket. Throws
 * FrameTooLargeError / MalformedMessageError on a bad prefix and TruncatedFrameError when the source ends inside a
 * frame.
 */
export async function* decodeFrames(
  source: AsyncIterable<ByteChunk> | Iterable<ByteChunk>,
  options: FrameOptions = {},
): AsyncGenerator<Uint8Array, void, undefined> {
  const decoder = new FrameDecoder(options);
  for await (const chunk of source) {
    decoder.push(chunk);
    yield* decoder.frames();
  }
  decoder.end();
}
