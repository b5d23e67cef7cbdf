/**
 * safetensors reader and writer. Format: u64 LE header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: { string: string } }`, then the data
 * section; offsets are relative to its start. Like the GGUF reader, the header is bounds-checked before anything is
 * allocated and tensors are read one at a time.
 */
import * as fs from 'node:fs';
import { CorruptModelError } from './errors.js';
import { openAndParse, readFully, tensorFileReader, writeAll } from './fs-util.js';
import type { TensorType } from './types.js';

/** The reference implementation refuses headers over 100 MB; so do we. */
const MAX_HEADER = 100_000_000;

const DTYPE_SIZE: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

const SUPPORTED: Record<string, TensorType> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: string;
  /** Our type, or undefined for a dtype we cannot run (I64, F8_E4M3, ...). */
  readonly type?: TensorType;
  readonly shape: readonly number[];
  /** Absolute offset in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  /** One tensor's bytes in a fresh buffer (offset 0). UnsupportedQuantizationError for dtypes we cannot run. */
  readTensorBytes(name: string): Uint8Array;
  /** `length` bytes of a tensor from its byte `start`: part of it, read alone. */
  readTensorRange(name: string, start: number, length: number): Uint8Array;
  close(): void;
}

export function openSafetensors(path: string): SafetensorsFile {
  return openAndParse(path, parse);
}

function parse(fd: number, path: string): SafetensorsFile {
  const size = fs.fstatSync(fd).size;
  const corrupt = (reason: string) => new CorruptModelError(path, reason);
  if (size < 8) throw corrupt(`file of ${size} bytes is too short for safetensors`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, 8, 0, path);
  const headerLength = lenBuf.readBigUInt64LE(0);
  if (headerLength > BigInt(Math.min(MAX_HEADER, size - 8))) throw corrupt(`header length ${headerLength} exceeds the file or the 100 MB limit`);
  const n = Number(headerLength);
  const headerBytes = Buffer.alloc(n);
  readFully(fd, headerBytes, 0, n, 8, path);
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch (error) {
    throw new CorruptModelError(path, 'header is not valid JSON', { cause: error });
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw corrupt('header is not a JSON object');

  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const tensors = new Map<string, SafetensorsTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw && typeof raw === 'object') metadata = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!entry || typeof entry !== 'object' || typeof entry.dtype !== 'string' || !Array.isArray(entry.shape) || !Array.isArray(entry.data_offsets)) {
      throw corrupt(`tensor "${name}" has a malformed header entry`);
    }
    const shape = entry.shape as unknown[];
    if (!shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) throw corrupt(`tensor "${name}" has shape ${JSON.stringify(shape)}`);
    const offsets = entry.data_offsets as unknown[];
    const [begin, end] = offsets as [number, number];
    if (offsets.length !== 2 || !Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin) {
      throw corrupt(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}`);
    }
    if (end > dataSize) throw corrupt(`tensor "${name}" data (${begin}..${end}) runs past the end of the file`);
    const elementSize = DTYPE_SIZE[entry.dtype];
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    if (elementSize !== undefined && elements * elementSize !== end - begin) {
      throw corrupt(`tensor "${name}": ${end - begin} bytes for ${elements} ${entry.dtype} elements`);
    }
    tensors.set(name, {
      name,
      dtype: entry.dtype,
      type: SUPPORTED[entry.dtype],
      shape: shape as number[],
      offset: dataStart + begin,
      byteLength: end - begin,
    });
  }

  return {
    path,
    metadata,
    tensors,
    ...tensorFileReader(fd, path, (name) => {
      const t = tensors.get(name);
      return t && { type: t.type, storedType: t.dtype, offset: t.offset, byteLength: t.byteLength };
    }),
  };
}

export interface SafetensorsWriteTensor {
  readonly name: string;
  /** "F32", "F16", "BF16", ... */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/**
 * Writes a safetensors file (for tests and tools). The header is padded with spaces to a multiple of 8 bytes, as
 * the reference writer does, so tensor data stays aligned.
 */
export function writeSafetensors(path: string, tensors: readonly SafetensorsWriteTensor[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const size = DTYPE_SIZE[t.dtype];
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (size !== undefined && size * elements !== t.data.byteLength) {
      throw new Error(`safetensors: ${t.name} has ${t.data.byteLength} bytes for ${elements} ${t.dtype} elements`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const fd = fs.openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    for (const t of tensors) writeAll(fd, t.data);
  } finally {
    fs.closeSync(fd);
  }
}
