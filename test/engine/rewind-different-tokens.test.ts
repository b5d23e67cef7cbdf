// needs ../shared/models (stories260K, and the stories tokenizer for the random-weight q8_0 twin)
/**
 * A rewind followed by *different* tokens must forget what was rewound: the outputs equal, bit for bit, those of a
 * fresh session fed the kept prefix and then the new tokens in the same steps. A cache that kept stale rows, or a
 * position that did not move back, would show here (and not in a replay of the same tokens).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEmbeddings } from '../../src/engine/embeddings.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { Embeddings, SpanExecutor } from '../../src/engine/types.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { STORIES_GGUF, testModel } from '../support/models.js';

const bytes = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
const ids = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => (seed * 131 + i * 29) % 500 + 3);

/** Steps of a session: each entry is one step's ids (one id: a decode step). */
async function run(span: SpanExecutor, embed: Embeddings, sessionId: string, steps: number[][], position?: number): Promise<Float32Array[]> {
  const outs: Float32Array[] = [];
  for (const [i, step] of steps.entries()) {
    outs.push(await span.step({ sessionId, hidden: embed.embed(step), ...(i === 0 && position !== undefined ? { position } : {}) }));
  }
  return outs;
}

function expectSameBytes(a: Float32Array[], b: Float32Array[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(bytes(x).equals(bytes(b[i]!)), `step ${i}`).toBe(true));
}

describe.each([
  ['stories260K f32', () => STORIES_GGUF, {}],
  ['stories-tiny q8_0', () => testModel('stories-tiny', 'q8_0'), {}],
  ['stories260K f32, f16 KV cache', () => STORIES_GGUF, { kvCacheType: 'f16' as const }],
])('%s: rewind, then different tokens', (_name, path, options) => {
  let source: LoadedModelSource;
  let span: SpanExecutor;
  let embed: Embeddings;
  let serial = 0;
  const open = (maxLength: number): string => {
    const id = `s${++serial}`;
    span.openSession(id, maxLength);
    return id;
  };

  beforeAll(async () => {
    source = await openModel(path());
    span = await loadSpan(source, { start: 0, end: source.config.numLayers }, { threads: 1, prefillChunkTokens: 64, ...options });
    embed = loadEmbeddings(source);
  });
  afterAll(async () => {
    await span?.dispose();
    source?.close();
  });

  it('rewind() then new decode steps equals a fresh session fed the prefix and the new tokens', async () => {
    const prefix = [[1, ...ids(6, 1)]];
    const old = ids(5, 2).map((id) => [id]);
    const fresh = ids(5, 3).map((id) => [id]);
    const a = open(32);
    await run(span, embed, a, prefix);
    const oldOuts = await run(span, embed, a, old);
    span.rewind(a, 7);
    expect(span.session(a)!.position).toBe(7);
    const afterRewind = await run(span, embed, a, fresh);

    const b = open(32);
    await run(span, embed, b, prefix);
    expectSameBytes(afterRewind, await run(span, embed, b, fresh));
    // The comparison sees something: other tokens at the same positions give other outputs.
    expect(bytes(afterRewind[0]!).equals(bytes(oldOuts[0]!))).toBe(false);
    expect(span.session(a)!.position).toBe(span.session(b)!.position);
  });

  it('a step at an earlier position (implicit rewind) into the middle of a multi-token step', async () => {
    const a = open(32);
    await run(span, embed, a, [[1, ...ids(9, 4)]]); // 10 tokens in one prefill
    const afterRewind = await run(span, embed, a, [ids(3, 5), [42]], 4); // back to 4, then 3 tokens and one decode

    const b = open(32);
    await run(span, embed, b, [[1, ...ids(3, 4)]]);
    expectSameBytes(afterRewind, await run(span, embed, b, [ids(3, 5), [42]]));
  });

  it('rewinding behind the point where the cache grew (256 rows), then a longer different continuation', async () => {
    const prompt = [1, ...ids(239, 6)]; // 240 tokens: four prefill chunks of 64
    const a = open(400);
    await run(span, embed, a, [prompt]);
    await run(span, embed, a, [ids(40, 7)]); // to 280: past 256, so the cache buffers were regrown
    await run(span, embed, a, ids(3, 8).map((id) => [id]));
    span.rewind(a, 200);
    const continuation = [ids(100, 9), ...ids(4, 10).map((id) => [id])]; // back past 256 again, then decode
    const afterRewind = await run(span, embed, a, continuation);

    const b = open(400);
    await run(span, embed, b, [prompt.slice(0, 200)]);
    expectSameBytes(afterRewind, await run(span, embed, b, continuation));
  });

  it('rewinding far back, past many stale rows (and to a smaller capacity), then decoding', async () => {
    const a = open(400);
    await run(span, embed, a, [[1, ...ids(329, 11)]]); // 330 rows: capacity 384
    span.rewind(a, 100);
    const continuation = ids(5, 12).map((id) => [id]);
    const afterRewind = await run(span, embed, a, continuation);

    const b = open(400);
    await run(span, embed, b, [[1, ...ids(329, 11)].slice(0, 100)]);
    expectSameBytes(afterRewind, await run(span, embed, b, continuation));
  });

  it('however the cache grew (in place, moved to a larger buffer, over stale rows, chunk by chunk), the same bits', async () => {
    const prompt = [1, ...ids(149, 13)]; // three prefill chunks: 64, 64 and 22
    const steps = [prompt, ...ids(200, 14).map((id) => [id])]; // decode 150 → 350: capacities 192 … 352
    // Room for twice the prompt after the prefill, then moved to a larger buffer at 321.
    const a = await run(span, embed, open(360), steps);
    // The same moves into other buffer sizes.
    const b = await run(span, embed, open(500), steps);
    // A 400-token step first, then the same steps from position 0: the cache shrinks in place over stale rows and
    // grows in place from there.
    const reused = open(500);
    await run(span, embed, reused, [[1, ...ids(399, 15)]]);
    const c = await run(span, embed, reused, steps, 0);
    // The prompt split by the caller at the chunks' boundaries: the cache grows chunk by chunk.
    const d = await run(span, embed, open(360), [prompt.slice(0, 64), prompt.slice(64, 128), prompt.slice(128), ...steps.slice(1)]);
    expectSameBytes(b, a);
    expectSameBytes(c, a);
    expectSameBytes([Float32Array.from(d.slice(0, 3).flatMap((x) => [...x])), ...d.slice(3)], a);
  });
});
