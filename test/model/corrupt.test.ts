// runs alone: measures time (vitest.config.ts)
// needs ../shared/models (real tokenizers, checkpoints or SmolLM2-shaped models): skipped on a checkout without it
/** Corrupt, truncated and hostile files must fail fast with CorruptModelError: never crash, hang, or allocate. */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CorruptModelError, ModelNotFoundError } from '../../src/model/errors.js';
import { openGguf } from '../../src/model/gguf.js';
import { openGgufSource } from '../../src/model/gguf-source.js';
import { openLlama2cSource } from '../../src/model/llama2c-source.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { tempDir, writeTinyGguf } from '../support/files.js';
import { STORIES_BIN } from '../support/models.js';

const dir = tempDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A little-endian byte builder for hand-crafted headers. */
class Bytes {
  private parts: Buffer[] = [];
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint | number) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  str(s: string) {
    this.u64(Buffer.byteLength(s));
    this.parts.push(Buffer.from(s));
    return this;
  }
  raw(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  build() {
    return Buffer.concat(this.parts);
  }
}

const GGUF = 0x46554747;

function write(name: string, bytes: Buffer): string {
  const path = nodePath.join(dir, name);
  fs.writeFileSync(path, bytes);
  return path;
}

/** Runs fn, expecting CorruptModelError, and returns how long it took. */
function expectCorrupt(fn: () => unknown, pattern?: RegExp): number {
  const start = performance.now();
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  const ms = performance.now() - start;
  expect(error).toBeInstanceOf(CorruptModelError);
  if (pattern) expect((error as Error).message).toMatch(pattern);
  return ms;
}

describe('GGUF corruption', () => {
  const valid = nodePath.join(dir, 'valid.gguf');
  writeTinyGguf(valid, { tokenizer: 'llama' });
  const bytes = fs.readFileSync(valid);

  it('the untouched file opens', () => {
    openGgufSource(valid).close();
  });

  it('a file truncated anywhere is CorruptModelError, quickly', () => {
    // Every byte of the fixed header and first keys, then points through the metadata, tensor infos and data.
    const g = openGguf(valid);
    const headerEnd = g.dataOffset;
    g.close();
    const cuts = new Set<number>();
    for (let i = 0; i <= 256; i += 1) cuts.add(i);
    for (let i = 256; i <= headerEnd; i += 7) cuts.add(i);
    for (let i = headerEnd - 8; i <= headerEnd + 8; i += 1) cuts.add(i);
    for (let i = headerEnd; i < bytes.length; i += 97) cuts.add(i);
    cuts.add(bytes.length - 1);
    let worst = 0;
    for (const cut of cuts) {
      const path = write('cut.gguf', bytes.subarray(0, cut));
      worst = Math.max(worst, expectCorrupt(() => openGgufSource(path)));
    }
    expect(cuts.size).toBeGreaterThan(400);
    expect(worst).toBeLessThan(500);
  });

  it('bad magic', () => {
    const b = Buffer.from(bytes);
    b.write('GGML', 0);
    expectCorrupt(() => openGguf(write('magic.gguf', b)), /bad magic/);
    expectCorrupt(() => openGguf(write('empty.gguf', Buffer.alloc(0))), /too short/);
    expectCorrupt(() => openGguf(write('text.gguf', Buffer.from('{"not": "gguf"}'))), /bad magic/);
  });

  it('unsupported versions, and big-endian files', () => {
    for (const version of [1, 4, 0x03000000]) {
      const b = Buffer.from(bytes);
      b.writeUInt32LE(version, 4);
      expectCorrupt(() => openGguf(write('version.gguf', b)), version === 0x03000000 ? /big-endian/ : /version/);
    }
  });

  it('absurd tensor and metadata counts fail before any allocation', () => {
    for (const offset of [8, 16]) {
      for (const count of [2n ** 63n, 2n ** 40n, 10_000_000n]) {
        const b = Buffer.from(bytes);
        b.writeBigUInt64LE(count, offset);
        const ms = expectCorrupt(() => openGguf(write('count.gguf', b)), /count/);
        expect(ms).toBeLessThan(200);
      }
    }
  });

  it('absurd string and array lengths', () => {
    const hugeKey = new Bytes().u32(GGUF).u32(3).u64(0).u64(1).u64(2n ** 62n).raw(Buffer.alloc(64)).build();
    expectCorrupt(() => openGguf(write('key.gguf', hugeKey)), /length/);
    const hugeString = new Bytes().u32(GGUF).u32(3).u64(0).u64(1).str('k').u32(8).u64(2n ** 40n).raw(Buffer.alloc(64)).build();
    expectCorrupt(() => openGguf(write('string.gguf', hugeString)), /length/);
    for (const elementType of [0, 6, 8, 10]) {
      const hugeArray = new Bytes().u32(GGUF).u32(3).u64(0).u64(1).str('k').u32(9).u32(elementType).u64(2n ** 50n).raw(Buffer.alloc(64)).build();
      const ms = expectCorrupt(() => openGguf(write('array.gguf', hugeArray)), /length/);
      expect(ms).toBeLessThan(200);
    }
    const nested = new Bytes().u32(GGUF).u32(3).u64(0).u64(1).str('k').u32(9).u32(9).u64(1).raw(Buffer.alloc(64)).build();
    expectCorrupt(() => openGguf(write('nested.gguf', nested)), /nested/);
    const badType = new Bytes().u32(GGUF).u32(3).u64(0).u64(1).str('k').u32(77).u32(0).raw(Buffer.alloc(64)).build();
    expectCorrupt(() => openGguf(write('type.gguf', badType)), /value type/);
    const badBool = new Bytes().u32(GGUF).u32(3).u64(0).u64(1).str('k').u32(7).raw(Buffer.from([5])).raw(Buffer.alloc(64)).build();
    expectCorrupt(() => openGguf(write('bool.gguf', badBool)), /boolean/);
  });

  /** A one-tensor file: tensor "t", F32, given dims and offset, with `dataBytes` of data after alignment. */
  function oneTensor(dims: bigint[], type: number, offset: bigint, dataBytes: number, extra?: (b: Bytes) => void): Buffer {
    const b = new Bytes().u32(GGUF).u32(3).u64(1).u64(extra ? 1 : 0);
    extra?.(b);
    b.str('t').u32(dims.length);
    for (const d of dims) b.u64(d);
    b.u32(type).u64(offset);
    const head = b.build();
    const padded = Math.ceil(head.length / 32) * 32;
    return Buffer.concat([head, Buffer.alloc(padded - head.length + dataBytes)]);
  }

  it('tensor data past the end of the file, misaligned offsets, absurd dims', () => {
    expect(() => openGguf(write('ok.gguf', oneTensor([8n], 0, 0n, 32))).close()).not.toThrow();
    expectCorrupt(() => openGguf(write('past.gguf', oneTensor([8n], 0, 32n, 32))), /past the end/);
    expectCorrupt(() => openGguf(write('past2.gguf', oneTensor([16n], 0, 0n, 32))), /past the end/);
    expectCorrupt(() => openGguf(write('huge-off.gguf', oneTensor([8n], 0, 2n ** 62n, 32))), /offset/);
    expectCorrupt(() => openGguf(write('misaligned.gguf', oneTensor([4n], 0, 16n, 64))), /alignment/);
    expectCorrupt(() => openGguf(write('dims.gguf', oneTensor([2n ** 40n, 2n ** 40n], 0, 0n, 32))), /absurd|past the end/);
    expectCorrupt(() => openGguf(write('ndims.gguf', oneTensor([1n, 1n, 1n, 1n, 1n], 0, 0n, 32))), /dimensions/);
    expectCorrupt(() => openGguf(write('blocks.gguf', oneTensor([33n], 8, 0n, 64))), /block/);
    expectCorrupt(() => openGguf(write('unknown-type.gguf', oneTensor([8n], 200, 0n, 32))), /unknown ggml type/);
    const badAlign = oneTensor([8n], 0, 0n, 32, (b) => b.str('general.alignment').u32(4).u32(3));
    expectCorrupt(() => openGguf(write('align.gguf', badAlign)), /power of two/);
  });

  it('duplicate tensors and keys', () => {
    const dupKey = new Bytes().u32(GGUF).u32(3).u64(0).u64(2).str('k').u32(4).u32(1).str('k').u32(4).u32(2).raw(Buffer.alloc(64)).build();
    expectCorrupt(() => openGguf(write('dupkey.gguf', dupKey)), /duplicate/);
  });

  it('a model whose tensor shapes contradict its metadata', () => {
    const path = nodePath.join(dir, 'mismatch.gguf');
    writeTinyGguf(path, { metadata: [['llama.feed_forward_length', { type: 4, value: 65 }]] });
    expectCorrupt(() => openGgufSource(path), /ffn_gate.*shape/);
  });

  it('a missing file is ModelNotFoundError', () => {
    expect(() => openGguf(nodePath.join(dir, 'nope.gguf'))).toThrow(ModelNotFoundError);
  });
});

describe('llama2.c corruption', () => {
  const bin = fs.readFileSync(STORIES_BIN);

  it('a size that differs from the header is CorruptModelError', () => {
    for (const cut of [0, 10, 28, 1000, bin.length - 4, bin.length - 1]) {
      expectCorrupt(() => openLlama2cSource(write('cut.bin', bin.subarray(0, cut))));
    }
    expectCorrupt(() => openLlama2cSource(write('long.bin', Buffer.concat([bin, Buffer.alloc(4)]))), /header implies/);
    // A negative vocab_size promises a classifier that is not there.
    const negative = Buffer.from(bin);
    negative.writeInt32LE(-512, 20);
    expectCorrupt(() => openLlama2cSource(write('neg.bin', negative)), /header implies/);
    const absurd = Buffer.from(bin);
    absurd.writeInt32LE(2 ** 30, 0);
    expectCorrupt(() => openLlama2cSource(write('absurd.bin', absurd)), /dim/);
  });
});

describe('safetensors corruption', () => {
  function st(header: unknown, dataBytes: number, lengthOverride?: bigint): string {
    const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
    return write('x.safetensors', Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  }

  it('rejects bad headers', () => {
    expect(() => openSafetensors(st({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 8)).close()).not.toThrow();
    expectCorrupt(() => openSafetensors(st({}, 0, 2n ** 60n)), /header length/);
    expectCorrupt(() => openSafetensors(st('{not json', 0)), /JSON/);
    expectCorrupt(() => openSafetensors(st('[1,2]', 0)), /object/);
    expectCorrupt(() => openSafetensors(st({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4)), /past the end/);
    expectCorrupt(() => openSafetensors(st({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), /elements/);
    expectCorrupt(() => openSafetensors(st({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8)), /shape/);
    expectCorrupt(() => openSafetensors(st({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8)), /data_offsets/);
    expectCorrupt(() => openSafetensors(st({ a: { shape: [2] } }, 8)), /malformed/);
    expectCorrupt(() => openSafetensors(write('tiny.safetensors', Buffer.alloc(3))), /too short/);
  });
});
