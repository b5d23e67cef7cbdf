/**
 * A small builder over proto.ts: name-managed nodes, constants, and weights kept outside the model as external data
 * in a WeightStore (so a span of any size avoids protobuf's 2 GiB limit and weight bytes are not re-serialized).
 */
import { DataType, encodeModel, type AttributeValue, type Dim, type GraphDef, type NodeDef, type TensorInit, type ValueInfo } from './proto.js';
import { MemoryWeightStore, type WeightStore } from './weight-store.js';

export { DataType };

export type Attrs = Record<string, number | string | readonly number[] | { floats: readonly number[] } | { float: number } | { graph: GraphDef }>;

function toAttribute(value: Attrs[string]): AttributeValue {
  if (typeof value === 'number') return Number.isInteger(value) ? { kind: 'int', value } : { kind: 'float', value };
  if (typeof value === 'string') return { kind: 'string', value };
  if (Array.isArray(value)) return { kind: 'ints', value: value as readonly number[] };
  if ('floats' in (value as object)) return { kind: 'floats', value: (value as { floats: number[] }).floats };
  if ('float' in (value as object)) return { kind: 'float', value: (value as { float: number }).float };
  return { kind: 'graph', value: (value as { graph: GraphDef }).graph };
}

export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  readonly initializers: TensorInit[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  /** Where the weights' bytes are kept (default: in memory); the graph's initializers only name them. */
  readonly weights: WeightStore;
  private readonly weightNames: { name: string; dataType: DataType; dims: readonly number[] }[] = [];
  private counter = { value: 0 };
  private constants = new Map<string, string>();
  private readonly root: GraphBuilder;

  constructor(readonly name: string, options: { weights?: WeightStore; parent?: GraphBuilder } = {}) {
    const { parent } = options;
    this.root = parent ? parent.root : this;
    this.weights = parent ? parent.weights : (options.weights ?? new MemoryWeightStore());
    if (parent) {
      this.counter = parent.counter;
      this.constants = parent.constants;
    }
  }

  /** A subgraph (for If branches). Names stay unique across the model; constants and weights live in the root graph. */
  child(name: string): GraphBuilder {
    return new GraphBuilder(name, { parent: this });
  }

  fresh(hint: string): string {
    return `${hint}_${this.counter.value++}`;
  }

  input(name: string, dataType: DataType, shape: readonly Dim[]): string {
    this.inputs.push({ name, dataType, shape });
    return name;
  }

  output(name: string, dataType: DataType, shape: readonly Dim[]): void {
    this.outputs.push({ name, dataType, shape });
  }

  /** Adds one node; returns its outputs (named from `hint` unless given). */
  node(opType: string, inputs: readonly string[], options: { attrs?: Attrs; outputs?: readonly string[] | number; domain?: string; hint?: string } = {}): string[] {
    const count = typeof options.outputs === 'number' ? options.outputs : (options.outputs?.length ?? 1);
    const outputs = Array.isArray(options.outputs) ? [...options.outputs] : Array.from({ length: count }, () => this.fresh(options.hint ?? opType.toLowerCase()));
    const attributes: Record<string, AttributeValue> = {};
    for (const [k, v] of Object.entries(options.attrs ?? {})) attributes[k] = toAttribute(v);
    this.nodes.push({ opType, domain: options.domain, name: this.fresh(`n_${opType}`), inputs, outputs, attributes });
    return outputs;
  }

  op(opType: string, inputs: readonly string[], attrs?: Attrs, hint?: string): string {
    return this.node(opType, inputs, { attrs, hint })[0]!;
  }

  ms(opType: string, inputs: readonly string[], attrs?: Attrs, hint?: string): string {
    return this.node(opType, inputs, { attrs, hint, domain: 'com.microsoft' })[0]!;
  }

  /** A weight kept outside the protobuf, in the graph's weight store; the builder keeps no reference to `data`. */
  weight(name: string, dataType: DataType, dims: readonly number[], data: Uint8Array): string {
    if (this.root !== this) return this.root.weight(name, dataType, dims, data);
    this.weights.put(name, data);
    this.weightNames.push({ name, dataType, dims });
    return name;
  }

  /** A small tensor embedded in the model. */
  constant(name: string, dataType: DataType, dims: readonly number[], raw: Uint8Array): string {
    if (this.root !== this) return this.root.constant(name, dataType, dims, raw);
    this.initializers.push({ name, dataType, dims, raw });
    return name;
  }

  int64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    const existing = this.constants.get(key);
    if (existing) return existing;
    const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    const name = this.constant(this.fresh('c_i64'), DataType.INT64, dims, raw);
    this.constants.set(key, name);
    return name;
  }

  float(values: readonly number[] | Float32Array, dims: readonly number[] = [values.length]): string {
    const arr = values instanceof Float32Array ? values : Float32Array.from(values);
    const key = arr.length <= 16 ? `f32:${dims.join('x')}:${Array.from(arr).join(',')}` : undefined;
    if (key && this.constants.has(key)) return this.constants.get(key)!;
    const name = this.constant(this.fresh('c_f32'), DataType.FLOAT, dims, new Uint8Array(arr.buffer.slice(arr.byteOffset, arr.byteOffset + arr.byteLength)));
    if (key) this.constants.set(key, name);
    return name;
  }

  toGraph(): GraphDef {
    // Weights are located when the model is encoded: a store may have moved them since they were put.
    const weights: TensorInit[] = this.weightNames.map((w) => ({ ...w, external: this.weights.locate(w.name) }));
    return { name: this.name, nodes: this.nodes, initializers: [...this.initializers, ...weights], inputs: this.inputs, outputs: this.outputs };
  }

  encode(): Uint8Array {
    return encodeModel({
      graph: this.toGraph(),
      opsets: [
        { domain: '', version: 21 },
        { domain: 'com.microsoft', version: 1 },
      ],
    });
  }
}
