/**
 * A minimal protobuf encoder for the subset of onnx.proto that Corolla emits (ModelProto, GraphProto, NodeProto,
 * AttributeProto, TensorProto, ValueInfoProto). Graphs are built in memory at load time, so a tiny writer beats
 * pulling in a protobuf runtime. Field numbers follow onnx/onnx.proto (IR version 8).
 */

export const enum DataType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  FLOAT16 = 10,
  BFLOAT16 = 16,
  BOOL = 9,
}

export type Dim = number | string;

export interface TensorInit {
  name: string;
  dataType: DataType;
  dims: readonly number[];
  /** Raw little-endian bytes, embedded in the model. */
  raw?: Uint8Array;
  /** Bytes kept outside the model and handed to onnxruntime as in-memory external data. */
  external?: { location: string; offset: number; length: number };
}

export type AttributeValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'tensor'; value: TensorInit }
  | { kind: 'graph'; value: GraphDef };

export interface NodeDef {
  opType: string;
  domain?: string;
  name: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: Record<string, AttributeValue>;
}

export interface ValueInfo {
  name: string;
  dataType: DataType;
  shape: readonly Dim[];
}

export interface GraphDef {
  name: string;
  nodes: NodeDef[];
  initializers: TensorInit[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface ModelDef {
  graph: GraphDef;
  opsets: { domain: string; version: number }[];
}

class Writer {
  private chunks: Uint8Array[] = [];
  private scratch = new Uint8Array(64);
  length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    let n = 0;
    while (v >= 0x80n) {
      this.scratch[n++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.scratch[n++] = Number(v);
    this.push(this.scratch.slice(0, n));
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(value.length);
    this.push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: Writer) => void): void {
    const inner = new Writer();
    build(inner);
    this.tag(field, 2);
    this.varint(inner.length);
    for (const c of inner.chunks) this.push(c);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

function writeTensor(w: Writer, t: TensorInit): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const entries: [string, string][] = [
      ['location', t.external.location],
      ['offset', String(t.external.offset)],
      ['length', String(t.external.length)],
    ];
    for (const [key, value] of entries) {
      w.message(13, (e) => {
        e.string(1, key);
        e.string(2, value);
      });
    }
    w.int(14, 1); // data_location = EXTERNAL
  }
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.dataType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

function writeAttribute(w: Writer, name: string, a: AttributeValue): void {
  w.string(1, name);
  switch (a.kind) {
    case 'int':
      w.int(3, a.value);
      w.int(20, 2);
      break;
    case 'float':
      w.float(2, a.value);
      w.int(20, 1);
      break;
    case 'string':
      w.string(4, a.value);
      w.int(20, 3);
      break;
    case 'ints':
      for (const v of a.value) w.int(8, v);
      w.int(20, 7);
      break;
    case 'floats':
      for (const v of a.value) w.float(7, v);
      w.int(20, 6);
      break;
    case 'tensor':
      w.message(5, (t) => writeTensor(t, a.value));
      w.int(20, 4);
      break;
    case 'graph':
      w.message(6, (g) => writeGraph(g, a.value));
      w.int(20, 5);
      break;
  }
}

function writeNode(w: Writer, n: NodeDef): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, value] of Object.entries(n.attributes ?? {})) w.message(5, (a) => writeAttribute(a, name, value));
  if (n.domain) w.string(7, n.domain);
}

function writeGraph(w: Writer, g: GraphDef): void {
  for (const n of g.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of g.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

export function encodeModel(model: ModelDef): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, 'corolla');
  w.message(7, (g) => writeGraph(g, model.graph));
  for (const o of model.opsets) {
    w.message(8, (m) => {
      if (o.domain) m.string(1, o.domain);
      m.int(2, o.version);
    });
  }
  return w.finish();
}
