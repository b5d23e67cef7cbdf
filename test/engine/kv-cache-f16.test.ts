// needs ../shared/models (stories260K)
/**
 * An f16 KV cache (llama.cpp's default) stores half the bytes and stays close to the f32 cache: teacher-forced over
 * a long text, the logits barely move and the greedy choice almost never does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLocalModel, type LocalModel } from '../../src/inference/local-model.js';
import { openModel } from '../../src/model/load.js';
import type { ModelSource } from '../../src/model/types.js';
import { STORIES_GGUF } from '../support/models.js';

const argmax = (a: Float32Array) => a.reduce((best, v, i) => (v > a[best]! ? i : best), 0);

function klDivergence(p: Float32Array, q: Float32Array): number {
  const logSoftmax = (x: Float32Array) => {
    const m = Math.max(...x);
    const z = Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0)) + m;
    return Array.from(x, (v) => v - z);
  };
  const lp = logSoftmax(p);
  const lq = logSoftmax(q);
  return lp.reduce((s, v, i) => s + Math.exp(v) * (v - lq[i]!), 0);
}

describe('f16 KV cache on stories260K', () => {
  let source: ModelSource;
  let f32: LocalModel;
  let f16: LocalModel;
  beforeAll(async () => {
    source = await openModel(STORIES_GGUF);
    f32 = await loadLocalModel(source, { threads: 1 });
    f16 = await loadLocalModel(source, { threads: 1, kvCacheType: 'f16' });
  });
  afterAll(async () => {
    await f32?.close();
    await f16?.close();
    source?.close();
  });

  it('holds half the bytes per token', () => {
    expect(f16.span.cacheBytesPerToken * 2).toBe(f32.span.cacheBytesPerToken);
  });

  it('gives nearly the f32 cache logits over 250 teacher-forced tokens, through a prefill and decode steps', async () => {
    const text = Array.from({ length: 250 }, (_, i) => 3 + ((i * 97 + 11) % 500));
    const a = await f32.openSession(256);
    const b = await f16.openSession(256);
    // A 50-token prefill, then one token at a time.
    let kl = klDivergence(await a.next(text.slice(0, 50)), await b.next(text.slice(0, 50)));
    let agree = 0;
    for (const id of text.slice(50)) {
      const [x, y] = [await a.next([id]), await b.next([id])];
      kl = Math.max(kl, klDivergence(x, y));
      if (argmax(x) === argmax(y)) agree++;
    }
    expect(kl).toBeLessThan(1e-3);
    expect(kl).toBeGreaterThan(0); // the f16 cache is really in use
    expect(agree / 200).toBeGreaterThanOrEqual(0.98);
  });
});
