/**
 * Weights staged for onnxruntime: a file store writes each weight once, page-aligned, moves to memory when the disk
 * refuses a write, and leaves nothing behind; a span built from it computes exactly what one built in memory does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileWeightStore, MemoryWeightStore, openWeightStore } from '../../src/engine/onnx/weight-store.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import { openModel } from '../../src/model/load.js';
import { STORIES_GGUF, testModel } from '../support/models.js';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
let parent: string;
beforeAll(() => {
  parent = fs.mkdtempSync(path.join(os.tmpdir(), 'corolla-store-test-'));
});
afterAll(() => fs.rmSync(parent, { recursive: true, force: true }));

describe('FileWeightStore', () => {
  it('writes each weight once, on a page boundary, and reads back what was put', () => {
    const store = new FileWeightStore(parent);
    store.put('a', bytes(5000, 1));
    store.put('b', bytes(10, 2));
    store.put('a', bytes(7, 9)); // a second graph naming the same weight shares the first one's bytes
    const a = store.locate('a');
    const b = store.locate('b');
    expect(a).toEqual({ location: 'weights.bin', offset: 0, length: 5000 });
    expect(b).toEqual({ location: 'weights.bin', offset: 8192, length: 10 });
    const model = store.modelInput('g', new Uint8Array([1, 2, 3]));
    expect('path' in model && fs.readFileSync(model.path)).toEqual(Buffer.from([1, 2, 3]));
    const file = fs.readFileSync(path.join(store.dir, 'weights.bin'));
    expect(file.subarray(b.offset, b.offset + b.length)).toEqual(Buffer.from(bytes(10, 2)));
    expect(file.subarray(0, 5000).every((x) => x === 1)).toBe(true);
    expect(() => store.locate('c')).toThrow(RangeError);
    store.dispose();
    expect(fs.existsSync(store.dir)).toBe(false);
  });

  it('moves to memory when a write fails, keeping every weight put before and after', () => {
    let written = 0;
    const store = new FileWeightStore(parent, (fd, data, offset, length, position) => {
      if (written + length > 6000) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      written += length;
      return fs.writeSync(fd, data, offset, length, position);
    });
    store.put('a', bytes(5000, 1));
    expect(store.inMemory).toBe(false);
    store.put('b', bytes(3000, 2));
    store.put('c', bytes(100, 3));
    expect(store.inMemory).toBe(true);
    const input = store.modelInput('g', new Uint8Array([7]));
    expect('externalData' in input).toBe(true);
    const data = 'externalData' in input ? Object.fromEntries(input.externalData.map((e) => [e.path, e.data])) : {};
    expect(Object.keys(data).sort()).toEqual(['a.bin', 'b.bin', 'c.bin']);
    expect(data['a.bin']).toEqual(bytes(5000, 1));
    expect(data['b.bin']).toEqual(bytes(3000, 2));
    expect(store.locate('c')).toEqual({ location: 'c.bin', offset: 0, length: 100 });
    store.dispose();
    expect(fs.existsSync(store.dir)).toBe(false);
  });

  it('removes the staging directories of processes that died while loading a while ago, and no others', () => {
    const dead = path.join(parent, 'corolla-weights-999999999-abc'); // above any pid_max
    const recent = path.join(parent, 'corolla-weights-999999998-abc'); // dead too, but written to a minute ago
    const mine = path.join(parent, `corolla-weights-${process.pid}-abc`);
    const other = path.join(parent, 'corolla-weights-notapid');
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const dir of [dead, recent, mine, other]) {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'weights.bin'), 'x');
      fs.utimesSync(path.join(dir, 'weights.bin'), hourAgo, hourAgo);
      fs.utimesSync(dir, hourAgo, hourAgo);
    }
    const minuteAgo = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(recent, 'weights.bin'), minuteAgo, minuteAgo);
    const store = new FileWeightStore(parent);
    expect(fs.existsSync(dead)).toBe(false);
    for (const dir of [recent, mine, other]) expect(fs.existsSync(dir)).toBe(true);
    store.dispose();
    for (const dir of [recent, mine, other]) fs.rmSync(dir, { recursive: true });
  });

  it('falls back to memory where no directory can be made, and to memory when told to', () => {
    expect(openWeightStore(path.join(parent, 'missing', 'deeper'))).toBeInstanceOf(MemoryWeightStore);
    expect(openWeightStore(null)).toBeInstanceOf(MemoryWeightStore);
    const store = openWeightStore(parent);
    expect(store).toBeInstanceOf(FileWeightStore);
    store.dispose();
  });
});

describe('a span staged through a file', () => {
  // f32 weights (stories260K), and 4-bit ones with block offsets (Q4_1: MatMulNBits plus an offsets matmul).
  const models = [
    { name: 'stories260K f32', path: () => STORIES_GGUF },
    { name: 'stories-256 q4_1', path: () => testModel('stories-256', 'q4_1') },
  ];
  it.each(models)('gives the same hidden states as one built in memory, batched too, and removes its staging directory ($name)', async ({ path: modelPath }) => {
    const source = await openModel(modelPath());
    try {
      const stagingDir = fs.mkdtempSync(path.join(parent, 'span-'));
      const range = { start: 0, end: source.config.numLayers };
      const staged = await loadSpan(source, range, { maxBatch: 4, stagingDir });
      const memory = await loadSpan(source, range, { maxBatch: 4, stagingDir: null });
      expect(fs.readdirSync(stagingDir)).toEqual([]);
      const H = source.config.hiddenSize;
      const prompt = Float32Array.from({ length: 5 * H }, (_, i) => Math.sin(i * 0.37));
      const results: Float32Array[][] = [];
      for (const span of [staged, memory]) {
        const out: Float32Array[] = [];
        for (const id of ['x', 'y']) span.openSession(id, 64);
        out.push(await span.step({ sessionId: 'x', hidden: prompt }));
        out.push(await span.step({ sessionId: 'y', hidden: prompt.subarray(0, 2 * H) }));
        const batch = await span.stepBatch([
          { sessionId: 'x', hidden: prompt.subarray(0, H) },
          { sessionId: 'y', hidden: prompt.subarray(H, 2 * H) },
        ]);
        out.push(...batch);
        results.push(out);
        await span.dispose();
      }
      expect(results[0]!.every((x) => x.every(Number.isFinite))).toBe(true);
      expect(results[0]).toEqual(results[1]);
    } finally {
      source.close();
    }
  });
});
