// needs ../shared/models (stories260K, and the stories tokenizer for the random-weight q8_0 twin)
/**
 * A decode step batched with other sessions' steps gives the very bytes it gives alone: the batch graph and the
 * single graph agree bit for bit, whichever slot a session lands in and however many slots are empty, and the KV
 * rows a batch writes are the rows a single step writes (later single steps read them and still agree).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEmbeddings } from '../../src/engine/embeddings.js';
import { loadSpan } from '../../src/engine/span-executor.js';
import type { SpanExecutor } from '../../src/engine/types.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { STORIES_GGUF, testModel } from '../support/models.js';

const MAX_BATCH = 4;
const PROMPTS = [
  [1, 403, 407, 261],
  [1, 17, 300],
  [1, 88, 89, 90, 91, 92],
  [1, 250],
];
const STEPS = 5;
const tokenOf = (session: number, step: number): number => (37 * session + 11 * step + 5) % 500;

const bytes = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

/**
 * Quantized weights with f32 activations (MatMulNBits accuracy_level 0, the exactness-check setting) are the
 * exception today: the batch graph differs from the single one by up to ~2e-6 (q4_0; 7e-7 on q8_0), in most of the
 * 64 outputs. A replay after failover compares outputs byte for byte, so a step first run in a batch would not
 * match its single-step replay there. Marked as failing until the engine makes them agree.
 */
const KNOWN_DIFFERENT = true;

describe.each([
  ['stories260K f32', () => STORIES_GGUF, {}, !KNOWN_DIFFERENT],
  ['stories260K f32, f16 KV cache', () => STORIES_GGUF, { kvCacheType: 'f16' as const }, !KNOWN_DIFFERENT],
  ['stories-tiny q8_0, int8 activations (the default)', () => testModel('stories-tiny', 'q8_0'), { quantizedActivations: true }, !KNOWN_DIFFERENT],
  ['stories-tiny q4_0, int8 activations (the default)', () => testModel('stories-tiny', 'q4_0'), { quantizedActivations: true }, !KNOWN_DIFFERENT],
  ['stories-tiny q8_0, f32 activations', () => testModel('stories-tiny', 'q8_0'), { quantizedActivations: false }, KNOWN_DIFFERENT],
  ['stories-tiny q4_0, f32 activations', () => testModel('stories-tiny', 'q4_0'), { quantizedActivations: false }, KNOWN_DIFFERENT],
])('%s: batched and single decode steps', (_name, path, options, knownDifferent) => {
  let source: LoadedModelSource;
  let span: SpanExecutor;

  beforeAll(async () => {
    source = await openModel(path());
    span = await loadSpan(source, { start: 0, end: source.config.numLayers }, { threads: 1, maxBatch: MAX_BATCH, ...options });
  });
  afterAll(async () => {
    await span?.dispose();
    source?.close();
  });

  (knownDifferent ? it.fails : it)('are equal bit for bit, for full and partly empty batches, in any slot order, and leave equal caches', async () => {
    const embed = loadEmbeddings(source);
    // Two copies of each conversation: "b" sessions decode in batches, "s" sessions one step at a time.
    for (const [i, prompt] of PROMPTS.entries()) {
      for (const kind of ['b', 's']) {
        span.openSession(`${kind}${i}`, 32);
        await span.step({ sessionId: `${kind}${i}`, hidden: embed.embed(prompt) });
      }
    }
    let compared = 0;
    for (let step = 0; step < STEPS; step++) {
      // Batch sizes 4, 3, 2, 4, 3 with a rotating slot order: padding slots and slot positions vary.
      const size = [4, 3, 2, 4, 3][step]!;
      const members = Array.from({ length: size }, (_, j) => (j + step) % PROMPTS.length);
      const batched = await span.stepBatch(members.map((i) => ({ sessionId: `b${i}`, hidden: embed.embed([tokenOf(i, step)]) })));
      for (const [j, i] of members.entries()) {
        const single = await span.step({ sessionId: `s${i}`, hidden: embed.embed([tokenOf(i, step)]) });
        expect(bytes(batched[j]!).equals(bytes(single)), `session ${i}, step ${step}`).toBe(true);
        compared++;
      }
      // Sessions left out of this batch catch up alone, so every pair stays at the same position.
      for (const i of PROMPTS.keys()) {
        if (members.includes(i)) continue;
        const a = await span.step({ sessionId: `b${i}`, hidden: embed.embed([tokenOf(i, step)]) });
        const b = await span.step({ sessionId: `s${i}`, hidden: embed.embed([tokenOf(i, step)]) });
        expect(bytes(a).equals(bytes(b))).toBe(true);
      }
    }
    // The caches the batches wrote are read by single steps now: still the same bytes.
    for (const i of PROMPTS.keys()) {
      expect(span.session(`b${i}`)!.position).toBe(span.session(`s${i}`)!.position);
      const a = await span.step({ sessionId: `b${i}`, hidden: embed.embed([7, 8, 9]) });
      const b = await span.step({ sessionId: `s${i}`, hidden: embed.embed([7, 8, 9]) });
      expect(bytes(a).equals(bytes(b))).toBe(true);
    }
    expect(compared).toBe(4 + 3 + 2 + 4 + 3);
    for (const i of PROMPTS.keys()) for (const kind of ['b', 's']) span.closeSession(`${kind}${i}`);
  });

  it('differ between sessions (the comparison sees something)', async () => {
    const embed = loadEmbeddings(source);
    span.openSession('x', 8);
    span.openSession('y', 8);
    const [x, y] = await span.stepBatch([
      { sessionId: 'x', hidden: embed.embed([1]) },
      { sessionId: 'y', hidden: embed.embed([2]) },
    ]);
    expect(bytes(x!).equals(bytes(y!))).toBe(false);
    span.closeSession('x');
    span.closeSession('y');
  });
});
