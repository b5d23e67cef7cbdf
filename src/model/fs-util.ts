/** Small synchronous file helpers shared by the loaders and writers. */
import * as fs from 'node:fs';
import { CorruptModelError, MissingTensorError, ModelNotFoundError, UnsupportedQuantizationError } from './errors.js';
import type { TensorType } from './types.js';

/** Reads exactly `length` bytes at `position` into `target[targetOffset..]`; a short file is corruption. */
export function readFully(fd: number, target: Uint8Array, targetOffset: number, length: number, position: number, file: string): void {
  let done = 0;
  while (done < length) {
    // readSync takes at most 2 GiB per call; keep chunks well under that.
    const n = fs.readSync(fd, target, targetOffset + done, Math.min(length - done, 1 << 30), position + done);
    if (n <= 0) throw new CorruptModelError(file, `unexpected end of file at offset ${position + done}`);
    done += n;
  }
}

/** Writes all of `data` (writeSync may write less than asked for large buffers). */
export function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) {
    done += fs.writeSync(fd, data, done, Math.min(data.byteLength - done, 1 << 30));
  }
}

/**
 * Opens `path` and hands the descriptor to `parse`; a missing file is ModelNotFoundError, and the descriptor is
 * closed if parsing throws (on success the parsed object owns it).
 */
export function openAndParse<T>(path: string, parse: (fd: number, path: string) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelNotFoundError(path, { cause: error });
    throw error;
  }
  try {
    return parse(fd, path);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/** Where one tensor's bytes lie in a weight file, as its header describes them. */
export interface StoredTensorExtent {
  /** Our storage type, or undefined when the file uses one we cannot run. */
  readonly type?: TensorType;
  /** The file's own name for the type, for messages. */
  readonly storedType: string;
  readonly offset: number;
  readonly byteLength: number;
}

/**
 * Tensor reads over an open weight file (GGUF, safetensors): one tensor's bytes at a time into a fresh buffer,
 * with typed errors for a missing name or an unrunnable type. The object owns `fd` and closes it on close().
 */
export function tensorFileReader(fd: number, path: string, find: (name: string) => StoredTensorExtent | undefined) {
  let closed = false;
  const readTensorRange = (name: string, start: number, length: number): Uint8Array => {
    const t = find(name);
    if (!t) throw new MissingTensorError(`tensor "${name}" (in ${path})`);
    if (!t.type) throw new UnsupportedQuantizationError(name, t.storedType);
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > t.byteLength) {
      throw new RangeError(`bytes ${start}..${start + length} are outside tensor "${name}" (${t.byteLength} bytes)`);
    }
    if (closed) throw new Error(`${path} is closed`);
    const out = new Uint8Array(length);
    readFully(fd, out, 0, length, t.offset + start, path);
    return out;
  };
  return {
    readTensorBytes(name: string): Uint8Array {
      return readTensorRange(name, 0, find(name)?.byteLength ?? 0);
    },
    /** `length` bytes of a tensor from its byte `start`. */
    readTensorRange,
    close(): void {
      if (closed) return;
      closed = true;
      fs.closeSync(fd);
    },
  };
}
