/**
 * Our engine along a token path, for comparisons with llama.cpp and between model files: the logits before each
 * step, teacher-forced on a given path (usually llama.cpp's greedy tokens), so one divergent argmax does not send
 * the two engines down different texts.
 */
import { loadLocalModel } from '../../src/inference/local-model.js';
import type { ModelSource } from '../../src/model/types.js';

export const argmax = (a: Float32Array): number => a.reduce((best, v, i) => (v > a[best]! ? i : best), 0);

export function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let j = 0; j < a.length; j++) d = Math.max(d, Math.abs(a[j]! - b[j]!));
  return d;
}

export interface EngineRun {
  /** Our argmax at each step. */
  tokens: number[];
  /** Logits before each step: logits[i] is compared with the reference's logits[i]. */
  logits: Float32Array[];
}

/** Prefills `prompt`, then feeds `forced` one token at a time; returns the logits before each forced token. */
export async function engineAlong(source: ModelSource, prompt: readonly number[], forced: readonly number[]): Promise<EngineRun> {
  const model = await loadLocalModel(source);
  try {
    const session = await model.openSession(prompt.length + forced.length);
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    let row = await session.next(prompt);
    for (let i = 0; i < forced.length; i++) {
      tokens.push(argmax(row));
      logits.push(row);
      if (i + 1 < forced.length) row = await session.next([forced[i]!]);
    }
    return { tokens, logits };
  } finally {
    await model.close();
  }
}

/** Prefills `prompt`, then decodes `steps` greedy tokens; returns them. */
export async function engineGreedy(source: ModelSource, prompt: readonly number[], steps: number): Promise<number[]> {
  const model = await loadLocalModel(source);
  try {
    const session = await model.openSession(prompt.length + steps);
    const tokens: number[] = [];
    let row = await session.next(prompt);
    for (let i = 0; i < steps; i++) {
      tokens.push(argmax(row));
      if (i + 1 < steps) row = await session.next([tokens[i]!]);
    }
    return tokens;
  } finally {
    await model.close();
  }
}

/** The largest max |logit difference| over all steps. */
export function worstDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  return Math.max(...a.map((row, i) => maxDiff(row, b[i]!)));
}

/** `length` token ids drawn uniformly from [first, vocab), the same for the same seed. */
export function randomTokens(length: number, vocab: number, seed: number, first = 3): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return first + ((s >>> 0) % (vocab - first));
  });
}
