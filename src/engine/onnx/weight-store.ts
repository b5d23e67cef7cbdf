/**
 * Where a graph's weights wait for onnxruntime while its session is built.
 *
 * onnxruntime copies each weight into the form its kernel wants (prepacking) and then releases the original. Weights
 * handed over in memory are our buffers, so that release frees nothing and the process keeps both copies for its
 * whole life (a SmolLM2 f32 span: 1,161 MB once its session is built, against 534 MB from a file). Weights staged in
 * a file are mapped by onnxruntime, read once to be packed and unmapped: only the packed copy stays. Span graphs are
 * built layer by layer into the file, so at most one layer's weights are in JavaScript at a time.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where an initializer's bytes are, for the model's external-data entry. */
export interface ExternalRef {
  readonly location: string;
  readonly offset: number;
  readonly length: number;
}

/** What onnxruntime builds a session from: a model file beside its weights, or a model and its weights in memory. */
export type OrtModelInput = { readonly path: string } | { readonly model: Uint8Array; readonly externalData: readonly { path: string; data: Uint8Array }[] };

export interface WeightStore {
  /** Keeps one weight's bytes. A name already kept is not written again: graphs built from one store share weights. */
  put(name: string, data: Uint8Array): void;
  /** Where a kept weight is, as the model must name it. */
  locate(name: string): ExternalRef;
  /** The input for onnxruntime of a model whose weights are in this store. */
  modelInput(graphName: string, model: Uint8Array): OrtModelInput;
  /** Frees what the store holds; sessions already built keep their own copies. */
  dispose(): void;
}

/** Weights handed to onnxruntime as in-memory external files. */
export class MemoryWeightStore implements WeightStore {
  private readonly buffers = new Map<string, Uint8Array>();

  put(name: string, data: Uint8Array): void {
    if (!this.buffers.has(name)) this.buffers.set(name, data);
  }

  locate(name: string): ExternalRef {
    const data = this.buffers.get(name);
    if (!data) throw new RangeError(`no weight "${name}" in this store`);
    return { location: `${name}.bin`, offset: 0, length: data.byteLength };
  }

  modelInput(_graphName: string, model: Uint8Array): OrtModelInput {
    return { model, externalData: [...this.buffers].map(([name, data]) => ({ path: `${name}.bin`, data })) };
  }

  dispose(): void {
    this.buffers.clear();
  }
}

const DIR_PREFIX = 'corolla-weights-';

/** Writes `length` bytes of `data` from `offset` at `position` of the file; returns the bytes written. */
export type WriteAt = (fd: number, data: Uint8Array, offset: number, length: number, position: number) => number;

/**
 * A staging directory untouched this long, whose process is gone, was abandoned. The age guards directories of
 * processes this one cannot see (another PID namespace sharing the temp directory).
 */
const ABANDONED_AFTER_MS = 10 * 60_000;

/** Removes staging directories of processes that died while loading (killed, say), which would otherwise stay. */
function removeAbandoned(parent: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = name.startsWith(DIR_PREFIX) ? Number.parseInt(name.slice(DIR_PREFIX.length), 10) : NaN;
    if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    const dir = path.join(parent, name);
    try {
      const touched = Math.max(...[dir, ...fs.readdirSync(dir).map((f) => path.join(dir, f))].map((f) => fs.statSync(f).mtimeMs));
      if (Date.now() - touched < ABANDONED_AFTER_MS) continue;
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, but another user's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Staged weights start on page boundaries, so onnxruntime maps each one instead of reading it into its heap. */
const PAGE = 4096;
const WEIGHTS_FILE = 'weights.bin';

/**
 * Weights written to one file in a fresh directory under `parent`, which `dispose` removes. If the disk refuses a
 * write (full, say), the store reads back what it wrote and keeps everything in memory from then on: the model still
 * loads, with the memory use of in-memory weights.
 */
export class FileWeightStore implements WeightStore {
  readonly dir: string;
  private fd: number | undefined;
  private end = 0;
  private readonly placed = new Map<string, ExternalRef>();
  private fallback: MemoryWeightStore | undefined;

  /** `write` is fs.writeSync unless a test gives one that fails. */
  constructor(parent: string, private readonly write: WriteAt = fs.writeSync) {
    removeAbandoned(parent);
    this.dir = fs.mkdtempSync(path.join(parent, `${DIR_PREFIX}${process.pid}-`));
    try {
      this.fd = fs.openSync(path.join(this.dir, WEIGHTS_FILE), 'w+');
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** True once a write failed and the weights moved to memory. */
  get inMemory(): boolean {
    return this.fallback !== undefined;
  }

  put(name: string, data: Uint8Array): void {
    if (this.fallback) return this.fallback.put(name, data);
    if (this.placed.has(name)) return;
    const offset = Math.ceil(this.end / PAGE) * PAGE;
    try {
      for (let done = 0; done < data.byteLength; ) done += this.write(this.fd!, data, done, data.byteLength - done, offset + done);
    } catch {
      this.moveToMemory();
      return this.fallback!.put(name, data);
    }
    this.placed.set(name, { location: WEIGHTS_FILE, offset, length: data.byteLength });
    this.end = offset + data.byteLength;
  }

  locate(name: string): ExternalRef {
    if (this.fallback) return this.fallback.locate(name);
    const ref = this.placed.get(name);
    if (!ref) throw new RangeError(`no weight "${name}" in this store`);
    return ref;
  }

  modelInput(graphName: string, model: Uint8Array): OrtModelInput {
    if (this.fallback) return this.fallback.modelInput(graphName, model);
    const file = path.join(this.dir, `${graphName}.onnx`);
    fs.writeFileSync(file, model);
    return { path: file };
  }

  private moveToMemory(): void {
    const memory = new MemoryWeightStore();
    for (const [name, ref] of this.placed) {
      const data = new Uint8Array(ref.length);
      fs.readSync(this.fd!, data, 0, ref.length, ref.offset);
      memory.put(name, data);
    }
    this.fallback = memory;
    this.closeFile();
  }

  private closeFile(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }

  /** Removes the directory. Sessions built from it keep what they mapped: an unlinked file stays readable while mapped. */
  dispose(): void {
    this.closeFile();
    this.fallback?.dispose();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A file store under `stagingDir` (default: the OS temp directory), or a memory store when `stagingDir` is null or
 * no directory can be made there.
 */
export function openWeightStore(stagingDir: string | null | undefined): WeightStore {
  if (stagingDir === null) return new MemoryWeightStore();
  try {
    return new FileWeightStore(stagingDir ?? os.tmpdir());
  } catch {
    return new MemoryWeightStore();
  }
}
