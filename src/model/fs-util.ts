/** Small synchronous file helpers shared by the loaders and writers. */
import * as fs from 'node:fs';
import { CorruptModelError, ModelNotFoundError } from './errors.js';

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
