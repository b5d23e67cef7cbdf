/**
 * GGUF v3 writer that streams tensor data: the header (metadata + tensor infos) is built in memory, then each
 * tensor's bytes are produced on demand and written, so a multi-GB model never sits in memory. The file is written
 * to `{path}.partial` and renamed when complete.
 */
import * as fs from 'node:fs';
import { writeAll } from './fs-util.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufValueType, type GgufValueTypeId } from './gguf.js';
import { ggmlTypeInfo } from './ggml-types.js';

export interface GgufMetaValue {
  readonly type: GgufValueTypeId;
  readonly value: unknown;
  /** For arrays. */
  readonly elementType?: GgufValueTypeId;
}

/** Typed metadata constructors: GGUF needs an explicit type for every value. */
export const gv = {
  u8: (value: number): GgufMetaValue => ({ type: GgufValueType.UINT8, value }),
  i8: (value: number): GgufMetaValue => ({ type: GgufValueType.INT8, value }),
  u16: (value: number): GgufMetaValue => ({ type: GgufValueType.UINT16, value }),
  i16: (value: number): GgufMetaValue => ({ type: GgufValueType.INT16, value }),
  u32: (value: number): GgufMetaValue => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufMetaValue => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufMetaValue => ({ type: GgufValueType.FLOAT32, value }),
  u64: (value: number | bigint): GgufMetaValue => ({ type: GgufValueType.UINT64, value }),
  i64: (value: number | bigint): GgufMetaValue => ({ type: GgufValueType.INT64, value }),
  f64: (value: number): GgufMetaValue => ({ type: GgufValueType.FLOAT64, value }),
  bool: (value: boolean): GgufMetaValue => ({ type: GgufValueType.BOOL, value }),
  str: (value: string): GgufMetaValue => ({ type: GgufValueType.STRING, value }),
  /** An array; `values` is a JS array or typed array of the element type. */
  arr: (elementType: GgufValueTypeId, values: ArrayLike<unknown>): GgufMetaValue => ({ type: GgufValueType.ARRAY, elementType, value: values }),
};

export interface GgufTensorSpec {
  /** Stored name, e.g. "blk.0.attn_q.weight". */
  readonly name: string;
  readonly ggmlType: number;
  /** GGUF order: dims[0] is the contiguous dimension (a linear layer is [in, out]). */
  readonly dims: readonly number[];
  /** The bytes, or a producer of chunks (called once, when the tensor is written) that must total the size. */
  readonly data: Uint8Array | (() => Iterable<Uint8Array>);
}

export interface WriteGgufOptions {
  readonly metadata: ReadonlyArray<readonly [string, GgufMetaValue]>;
  readonly tensors: readonly GgufTensorSpec[];
  readonly alignment?: number;
  /** Bytes written so far and the file size, for progress display. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** A growable little-endian byte builder for the header. */
class ByteBuilder {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number) { this.reserve(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number) { this.reserve(1); this.buf.writeInt8(v, this.length); this.length += 1; }
  u16(v: number) { this.reserve(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number) { this.reserve(2); this.buf.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number) { this.reserve(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number) { this.reserve(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number) { this.reserve(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number) { this.reserve(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  u64(v: number | bigint) { this.reserve(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint) { this.reserve(8); this.buf.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  string(s: string) {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    this.reserve(n);
    this.buf.write(s, this.length, 'utf8');
    this.length += n;
  }
  pad(alignment: number) {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(b: ByteBuilder, type: number, v: unknown, key: string): void {
  const num = (): number => {
    if (typeof v !== 'number') throw new TypeError(`GGUF metadata ${key}: expected a number, got ${typeof v}`);
    return v;
  };
  switch (type) {
    case GgufValueType.UINT8: return b.u8(num());
    case GgufValueType.INT8: return b.i8(num());
    case GgufValueType.UINT16: return b.u16(num());
    case GgufValueType.INT16: return b.i16(num());
    case GgufValueType.UINT32: return b.u32(num());
    case GgufValueType.INT32: return b.i32(num());
    case GgufValueType.FLOAT32: return b.f32(num());
    case GgufValueType.FLOAT64: return b.f64(num());
    case GgufValueType.UINT64: return b.u64(v as number | bigint);
    case GgufValueType.INT64: return b.i64(v as number | bigint);
    case GgufValueType.BOOL: return b.u8(v ? 1 : 0);
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw new TypeError(`GGUF metadata ${key}: expected a string`);
      return b.string(v);
    default:
      throw new TypeError(`GGUF metadata ${key}: cannot write value type ${type}`);
  }
}

function tensorByteLength(t: GgufTensorSpec): number {
  const info = ggmlTypeInfo(t.ggmlType);
  if (!info) throw new TypeError(`tensor ${t.name}: unknown ggml type ${t.ggmlType}`);
  if (t.dims[0]! % info.blockSize !== 0) throw new TypeError(`tensor ${t.name}: ne0 ${t.dims[0]} is not a multiple of ${info.blockSize}`);
  const elements = t.dims.reduce((a, b) => a * b, 1);
  return (elements / info.blockSize) * info.typeSize;
}

/** Writes a GGUF v3 file. Returns its size in bytes. */
export function writeGguf(path: string, options: WriteGgufOptions): number {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const metadata = [...options.metadata];
  if (alignment !== GGUF_DEFAULT_ALIGNMENT && !metadata.some(([k]) => k === 'general.alignment')) {
    metadata.push(['general.alignment', gv.u32(alignment)]);
  }

  const b = new ByteBuilder();
  b.u32(GGUF_MAGIC);
  b.u32(3);
  b.u64(options.tensors.length);
  b.u64(metadata.length);
  for (const [key, entry] of metadata) {
    b.string(key);
    b.u32(entry.type);
    if (entry.type === GgufValueType.ARRAY) {
      const values = entry.value as ArrayLike<unknown>;
      const elementType = entry.elementType ?? GgufValueType.STRING;
      b.u32(elementType);
      b.u64(values.length);
      for (let i = 0; i < values.length; i++) writeScalar(b, elementType, values[i], key);
    } else {
      writeScalar(b, entry.type, entry.value, key);
    }
  }
  const sizes = options.tensors.map(tensorByteLength);
  let offset = 0;
  options.tensors.forEach((t, i) => {
    b.string(t.name);
    b.u32(t.dims.length);
    for (const d of t.dims) b.u64(d);
    b.u32(t.ggmlType);
    b.u64(offset);
    offset += Math.ceil(sizes[i]! / alignment) * alignment;
  });
  b.pad(alignment);
  const header = b.bytes();
  const total = header.length + offset;

  const partial = `${path}.partial`;
  const fd = fs.openSync(partial, 'w');
  let written = 0;
  const zeros = new Uint8Array(alignment);
  try {
    writeAll(fd, header);
    written = header.length;
    options.onProgress?.(written, total);
    options.tensors.forEach((t, i) => {
      let bytes = 0;
      const chunks = t.data instanceof Uint8Array ? [t.data] : t.data();
      for (const chunk of chunks) {
        writeAll(fd, chunk);
        bytes += chunk.byteLength;
        written += chunk.byteLength;
        options.onProgress?.(written, total);
      }
      if (bytes !== sizes[i]) throw new Error(`tensor ${t.name}: produced ${bytes} bytes, its shape needs ${sizes[i]}`);
      const pad = (alignment - (bytes % alignment)) % alignment;
      if (pad) {
        writeAll(fd, zeros.subarray(0, pad));
        written += pad;
      }
    });
    fs.closeSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(partial, { force: true });
    throw error;
  }
  fs.renameSync(partial, path);
  return total;
}
