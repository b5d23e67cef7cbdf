/**
 * Reading and writing small secret files (identity keys, swarm keys) safely: a reader never blocks on a FIFO or
 * streams /dev/zero (it opens non-blocking, checks with fstat that the path is a regular file of bounded size, and
 * reads at most that bound), reports whether group or others may read the file, and a writer never replaces a file
 * that another process created meanwhile (a complete temp file is hard-linked into place, which fails on EEXIST).
 */
import { constants } from 'node:fs';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface SecretFile {
  bytes: Uint8Array;
  /** Group or others have some permission on the file (mode & 0o077). */
  readableByOthers: boolean;
}

/**
 * Reads a regular file of at most `maxBytes`; undefined when it does not exist. Anything else wrong throws what
 * `fail(reason, cause)` makes (the caller's typed error).
 */
export async function readSecretFile(file: string, maxBytes: number, fail: (reason: string, cause?: unknown) => Error): Promise<SecretFile | undefined> {
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw fail(`cannot read file (${code ?? 'unknown error'})`, error);
  }
  let failure: Error | undefined;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw (failure = fail('not a regular file'));
    if (info.size > maxBytes) throw (failure = fail(`file is ${info.size} bytes, too large (limit ${maxBytes})`));
    // read one byte past the bound, in case the file grew after fstat
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw (failure = fail(`file is larger than ${maxBytes} bytes, too large`));
    }
    return { bytes: new Uint8Array(buffer.subarray(0, length)), readableByOthers: (info.mode & 0o077) !== 0 };
  } catch (error) {
    if (error === failure) throw error;
    throw fail(`cannot read file (${(error as NodeJS.ErrnoException).code ?? 'unknown error'})`, error);
  } finally {
    await handle.close().catch(() => {});
  }
}

/**
 * Creates `file` with `bytes`, mode 0600 (parent directories 0700), atomically and only if it does not exist:
 * readers never see a partial file, and of two concurrent creators exactly one wins; the other gets EEXIST.
 */
export async function createSecretFile(file: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(temp, file);
  } finally {
    await unlink(temp).catch(() => {});
  }
}
