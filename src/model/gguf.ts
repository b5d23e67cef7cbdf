/**
 * GGUF reader (versions 2 and 3, little-endian). Opening reads only the header, the metadata and the tensor
 * infos, through a small window buffer; tensor data is read on demand, one tensor at a time.
 *
 * Everything read from the file is distrusted: every count, length and offset is checked against the bytes that
 * remain in the file (and a sane cap) before anything is allocated, so a corrupt or hostile file fails fast with
 * CorruptModelError instead of crashing, hanging, or allocating gigabytes.
 *
 * File layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata key/values, the tensor
 * infos (name, u32 n_dims, u64 dims[n_dims] with ne0 — the contiguous dimension — first, u32 ggml type, u64 offset
 * relative to the data section), padding to `general.alignment` (default 32), then the data section.
 */
import * as fs from 'node:fs';
import { CorruptModelError } from './errors.js';
import { openAndParse, readFully, tensorFileReader } from './fs-util.js';
import { ggmlTypeInfo } from './ggml-types.js';
import type { TensorType } from './types.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueTypeId = (typeof GgufValueType)[keyof typeof GgufValueType];

/** Caps on what a sane file contains; anything bigger is treated as corruption rather than allocated. */
export const GGUF_LIMITS = {
  maxKeyLength: 65_536,
  maxStringLength: 64 * 1024 * 1024,
  maxArrayLength: 64 * 1024 * 1024,
  maxTensors: 1_000_000,
  maxMetadata: 1_000_000,
  maxDims: 4,
} as const;

export interface GgufTensorInfo {
  /** The name as stored, e.g. "blk.0.attn_q.weight". */
  readonly name: string;
  readonly ggmlType: number;
  /** ggml's name for the type, e.g. "Q8_0". */
  readonly typeName: string;
  /** Our storage type, or undefined when we cannot run this ggml type. */
  readonly type?: TensorType;
  /** GGUF order: dims[0] (ne0) is the contiguous dimension, i.e. a linear layer is [in, out]. */
  readonly dims: readonly number[];
  readonly elements: number;
  /** Absolute offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface GgufMetadataType {
  readonly type: GgufValueTypeId;
  /** For arrays: the element type. */
  readonly elementType?: GgufValueTypeId;
}

export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly fileSize: number;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  /**
   * Metadata values: numbers (u64/i64 beyond 2^53 become bigint), booleans, strings, and arrays: numeric arrays
   * as typed arrays (Uint8Array … Float64Array, BigInt64Array for 64-bit integers), string and bool arrays as JS
   * arrays.
   */
  readonly metadata: Map<string, unknown>;
  readonly metadataTypes: Map<string, GgufMetadataType>;
  readonly tensors: readonly GgufTensorInfo[];
  tensor(name: string): GgufTensorInfo | undefined;
  /**
   * Reads one tensor's bytes (by its stored name) into a fresh buffer at offset 0, so typed views over it are
   * aligned. Throws UnsupportedQuantizationError for a ggml type we cannot run, MissingTensorError for a name
   * the file does not have.
   */
  readTensorBytes(name: string): Uint8Array;
  /** `length` bytes of a tensor from its byte `start`: part of it, read alone. */
  readTensorRange(name: string, start: number, length: number): Uint8Array;
  close(): void;
}

const WINDOW = 1 << 20;

/**
 * A forward-only reader over a file descriptor with a window buffer, so the header of a multi-GB file costs a few
 * reads. Every read is bounds-checked against the file size.
 */
class HeaderReader {
  pos = 0;
  private buf: Buffer = Buffer.allocUnsafe(WINDOW);
  private bufStart = 0;
  private bufEnd = 0;

  constructor(
    private readonly fd: number,
    readonly fileSize: number,
    private readonly file: string,
  ) {}

  corrupt(reason: string): CorruptModelError {
    return new CorruptModelError(this.file, reason);
  }

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Makes the next n bytes available in the window, or fails as truncated. Returns the window index of pos. */
  private need(n: number, what: string): number {
    if (n > this.fileSize - this.pos) {
      throw this.corrupt(`truncated: ${what} needs ${n} bytes at offset ${this.pos}, but the file has ${this.fileSize} bytes`);
    }
    if (this.pos < this.bufStart || this.pos + n > this.bufEnd) {
      const size = Math.max(WINDOW, n);
      if (this.buf.length < size) this.buf = Buffer.allocUnsafe(size);
      const want = Math.min(size, this.fileSize - this.pos);
      readFully(this.fd, this.buf, 0, want, this.pos, this.file);
      this.bufStart = this.pos;
      this.bufEnd = this.pos + want;
    }
    return this.pos - this.bufStart;
  }

  u8(what: string): number {
    const i = this.need(1, what);
    this.pos += 1;
    return this.buf[i]!;
  }
  i8(what: string): number {
    const i = this.need(1, what);
    this.pos += 1;
    return this.buf.readInt8(i);
  }
  u16(what: string): number {
    const i = this.need(2, what);
    this.pos += 2;
    return this.buf.readUInt16LE(i);
  }
  i16(what: string): number {
    const i = this.need(2, what);
    this.pos += 2;
    return this.buf.readInt16LE(i);
  }
  u32(what: string): number {
    const i = this.need(4, what);
    this.pos += 4;
    return this.buf.readUInt32LE(i);
  }
  i32(what: string): number {
    const i = this.need(4, what);
    this.pos += 4;
    return this.buf.readInt32LE(i);
  }
  f32(what: string): number {
    const i = this.need(4, what);
    this.pos += 4;
    return this.buf.readFloatLE(i);
  }
  f64(what: string): number {
    const i = this.need(8, what);
    this.pos += 8;
    return this.buf.readDoubleLE(i);
  }
  /** A u64 as a number, or a bigint when it exceeds 2^53. */
  u64Value(what: string): number | bigint {
    const i = this.need(8, what);
    this.pos += 8;
    const lo = this.buf.readUInt32LE(i);
    const hi = this.buf.readUInt32LE(i + 4);
    return hi <= 0x1fffff ? hi * 2 ** 32 + lo : this.buf.readBigUInt64LE(i);
  }
  i64Value(what: string): number | bigint {
    const i = this.need(8, what);
    this.pos += 8;
    const value = this.buf.readBigInt64LE(i);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  /** A u64 used as a count, length or offset: must be at most `max`. */
  count(what: string, max: number): number {
    const value = this.u64Value(what);
    if (typeof value === 'bigint' || value > max) throw this.corrupt(`${what} is ${value}, more than the limit ${max}`);
    return value;
  }
  string(what: string, maxLength: number): string {
    const length = this.count(`length of ${what}`, Math.min(maxLength, this.remaining - 8));
    const i = this.need(length, what);
    this.pos += length;
    return this.buf.toString('utf8', i, i + length);
  }
  /** A copy of the next n bytes in a fresh, aligned buffer. */
  bytes(n: number, what: string): Uint8Array {
    if (n > this.remaining) this.need(n, what); // throws "truncated"
    const out = new Uint8Array(n);
    if (n <= WINDOW) {
      const i = this.need(n, what);
      out.set(this.buf.subarray(i, i + n));
    } else {
      readFully(this.fd, out, 0, n, this.pos, this.file);
    }
    this.pos += n;
    return out;
  }
}

const SCALAR_SIZE: Partial<Record<number, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

/**
 * The shortest decimal that is the same f32, so 1e-5 stored as f32 reads back as 1e-5 rather than
 * 9.999999747378752e-6 (the value an f32 consumer sees is identical either way).
 */
function shortestF32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const candidate = Number(v.toPrecision(p));
    if (Math.fround(candidate) === v) return candidate;
  }
  return v;
}

function readScalar(r: HeaderReader, type: number, what: string): unknown {
  switch (type) {
    case GgufValueType.UINT8:
      return r.u8(what);
    case GgufValueType.INT8:
      return r.i8(what);
    case GgufValueType.UINT16:
      return r.u16(what);
    case GgufValueType.INT16:
      return r.i16(what);
    case GgufValueType.UINT32:
      return r.u32(what);
    case GgufValueType.INT32:
      return r.i32(what);
    case GgufValueType.FLOAT32:
      return shortestF32(r.f32(what));
    case GgufValueType.BOOL: {
      const b = r.u8(what);
      if (b > 1) throw r.corrupt(`${what}: boolean byte is ${b}`);
      return b === 1;
    }
    case GgufValueType.STRING:
      return r.string(what, GGUF_LIMITS.maxStringLength);
    case GgufValueType.UINT64:
      return r.u64Value(what);
    case GgufValueType.INT64:
      return r.i64Value(what);
    case GgufValueType.FLOAT64:
      return r.f64(what);
    default:
      throw r.corrupt(`${what}: unknown metadata value type ${type}`);
  }
}

function readArray(r: HeaderReader, what: string): { value: unknown; elementType: GgufValueTypeId } {
  const elementType = r.u32(`${what} element type`);
  const minSize = elementType === GgufValueType.STRING ? 8 : SCALAR_SIZE[elementType];
  if (elementType === GgufValueType.ARRAY) throw r.corrupt(`${what}: nested arrays are not supported`);
  if (minSize === undefined) throw r.corrupt(`${what}: unknown array element type ${elementType}`);
  // Every element takes at least minSize bytes, so the file itself bounds the count before we allocate.
  const count = r.count(`${what} length`, Math.min(GGUF_LIMITS.maxArrayLength, Math.floor(Math.max(0, r.remaining - 8) / minSize)));
  const typeId = elementType as GgufValueTypeId;
  if (elementType === GgufValueType.STRING) {
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) out[i] = r.string(`${what}[${i}]`, GGUF_LIMITS.maxStringLength);
    return { value: out, elementType: typeId };
  }
  if (elementType === GgufValueType.BOOL) {
    const raw = r.bytes(count, what);
    const out = new Array<boolean>(count);
    for (let i = 0; i < count; i++) out[i] = raw[i] !== 0;
    return { value: out, elementType: typeId };
  }
  const raw = r.bytes(count * minSize, what);
  const b = raw.buffer;
  switch (elementType) {
    case GgufValueType.UINT8:
      return { value: raw, elementType: typeId };
    case GgufValueType.INT8:
      return { value: new Int8Array(b, 0, count), elementType: typeId };
    case GgufValueType.UINT16:
      return { value: new Uint16Array(b, 0, count), elementType: typeId };
    case GgufValueType.INT16:
      return { value: new Int16Array(b, 0, count), elementType: typeId };
    case GgufValueType.UINT32:
      return { value: new Uint32Array(b, 0, count), elementType: typeId };
    case GgufValueType.INT32:
      return { value: new Int32Array(b, 0, count), elementType: typeId };
    case GgufValueType.FLOAT32:
      return { value: new Float32Array(b, 0, count), elementType: typeId };
    case GgufValueType.UINT64:
      return { value: new BigUint64Array(b, 0, count), elementType: typeId };
    case GgufValueType.INT64:
      return { value: new BigInt64Array(b, 0, count), elementType: typeId };
    default:
      return { value: new Float64Array(b, 0, count), elementType: typeId };
  }
}

/**
 * Opens a GGUF file and parses its header. Throws ModelNotFoundError when the file does not exist and
 * CorruptModelError for anything malformed. Call close() when done (the file descriptor stays open for reads).
 */
export function openGguf(path: string): GgufFile {
  return openAndParse(path, parse);
}

function parse(fd: number, path: string): GgufFile {
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) throw new CorruptModelError(path, 'not a regular file');
  const fileSize = stat.size;
  const r = new HeaderReader(fd, fileSize, path);

  if (fileSize < 4) throw r.corrupt(`file of ${fileSize} bytes is too short to be GGUF`);
  const magic = r.u32('magic');
  if (magic !== GGUF_MAGIC) throw r.corrupt(`bad magic 0x${magic.toString(16).padStart(8, '0')} (not a GGUF file)`);
  const version = r.u32('version');
  if (version !== 2 && version !== 3) {
    if (version === 0x02000000 || version === 0x03000000) throw r.corrupt('big-endian GGUF files are not supported');
    throw r.corrupt(`unsupported GGUF version ${version} (only versions 2 and 3 are read)`);
  }
  // Each tensor info takes at least 24 bytes and each key/value at least 13, which bounds both counts.
  const tensorCount = r.count('tensor count', Math.min(GGUF_LIMITS.maxTensors, Math.floor(Math.max(0, r.remaining - 8) / 24)));
  const kvCount = r.count('metadata count', Math.min(GGUF_LIMITS.maxMetadata, Math.floor(Math.max(0, r.remaining - 8) / 13)));

  const metadata = new Map<string, unknown>();
  const metadataTypes = new Map<string, GgufMetadataType>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(`metadata key #${i}`, GGUF_LIMITS.maxKeyLength);
    if (metadata.has(key)) throw r.corrupt(`duplicate metadata key "${key}"`);
    const type = r.u32(`type of metadata "${key}"`);
    if (type === GgufValueType.ARRAY) {
      const { value, elementType } = readArray(r, `metadata "${key}"`);
      metadata.set(key, value);
      metadataTypes.set(key, { type: GgufValueType.ARRAY, elementType });
    } else {
      metadata.set(key, readScalar(r, type, `metadata "${key}"`));
      metadataTypes.set(key, { type: type as GgufValueTypeId });
    }
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has('general.alignment')) {
    const a = metadata.get('general.alignment');
    if (typeof a !== 'number' || !Number.isInteger(a) || a <= 0 || a > 1 << 20 || (a & (a - 1)) !== 0) {
      throw r.corrupt(`general.alignment must be a power of two, got ${String(a)}`);
    }
    alignment = a;
  }

  interface RawInfo {
    name: string;
    dims: number[];
    ggmlType: number;
    relOffset: number;
  }
  const raw: RawInfo[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string(`name of tensor #${i}`, GGUF_LIMITS.maxKeyLength);
    if (seen.has(name)) throw r.corrupt(`duplicate tensor "${name}"`);
    seen.add(name);
    const nDims = r.u32(`dimension count of "${name}"`);
    if (nDims < 1 || nDims > GGUF_LIMITS.maxDims) throw r.corrupt(`tensor "${name}" has ${nDims} dimensions`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(r.count(`dimension ${d} of "${name}"`, Number.MAX_SAFE_INTEGER));
    const ggmlType = r.u32(`type of "${name}"`);
    const relOffset = r.count(`offset of "${name}"`, Number.MAX_SAFE_INTEGER);
    raw.push({ name, dims, ggmlType, relOffset });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  if (tensorCount > 0 && dataOffset > fileSize) throw r.corrupt(`data section starts at ${dataOffset}, past the end of the file (${fileSize})`);
  const dataSize = Math.max(0, fileSize - dataOffset);

  const tensors: GgufTensorInfo[] = [];
  const byName = new Map<string, GgufTensorInfo>();
  for (const t of raw) {
    const info = ggmlTypeInfo(t.ggmlType);
    if (!info) throw r.corrupt(`tensor "${t.name}" has unknown ggml type ${t.ggmlType}`);
    let elements = 1;
    for (const d of t.dims) {
      elements *= d;
      if (elements > Number.MAX_SAFE_INTEGER) throw r.corrupt(`tensor "${t.name}" has absurd dimensions [${t.dims.join(', ')}]`);
    }
    if (t.dims[0]! % info.blockSize !== 0) {
      throw r.corrupt(`tensor "${t.name}": row of ${t.dims[0]} elements is not a whole number of ${info.name} blocks of ${info.blockSize}`);
    }
    const byteLength = (elements / info.blockSize) * info.typeSize;
    if (t.relOffset % alignment !== 0) throw r.corrupt(`tensor "${t.name}" offset ${t.relOffset} is not a multiple of the alignment ${alignment}`);
    if (t.relOffset + byteLength > dataSize) {
      throw r.corrupt(`tensor "${t.name}" data (${byteLength} bytes at data offset ${t.relOffset}) runs past the end of the file`);
    }
    const tensor: GgufTensorInfo = {
      name: t.name,
      ggmlType: t.ggmlType,
      typeName: info.name,
      type: info.tensorType,
      dims: t.dims,
      elements,
      offset: dataOffset + t.relOffset,
      byteLength,
    };
    tensors.push(tensor);
    byName.set(t.name, tensor);
  }

  return {
    path,
    version,
    fileSize,
    alignment,
    dataOffset,
    metadata,
    metadataTypes,
    tensors,
    tensor: (name) => byName.get(name),
    ...tensorFileReader(fd, path, (name) => {
      const t = byName.get(name);
      return t && { type: t.type, storedType: t.typeName, offset: t.offset, byteLength: t.byteLength };
    }),
  };
}

/** Metadata accessors that check types, for the loaders. */
export function metaNumber(m: Map<string, unknown>, key: string): number | undefined {
  const v = m.get(key);
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

export function metaString(m: Map<string, unknown>, key: string): string | undefined {
  const v = m.get(key);
  return typeof v === 'string' ? v : undefined;
}

export function metaBool(m: Map<string, unknown>, key: string): boolean | undefined {
  const v = m.get(key);
  return typeof v === 'boolean' ? v : undefined;
}
