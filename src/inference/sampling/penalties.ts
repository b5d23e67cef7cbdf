/**
 * Penalties over the last `penaltyLastN` tokens of the history (each distinct token once):
 *   repetition (llama.cpp / HF):  logit > 0 ? logit / r : logit · r
 *   frequency and presence (OpenAI): logit −= count · frequencyPenalty + presencePenalty
 */
import type { Scratch } from './kernels.js';

export interface PenaltyOptions {
  readonly repetitionPenalty: number;
  readonly frequencyPenalty: number;
  readonly presencePenalty: number;
  /** −1: the whole history. */
  readonly penaltyLastN: number;
}

/** Copies logits into the scratch work buffer and applies the penalties of the history window. */
export function applyPenalties(scratch: Scratch, logits: Float32Array, history: readonly number[], o: PenaltyOptions): Float32Array {
const { repetitionPenalty: rep, frequencyPenalty: freq, presencePenalty: presence, penaltyLastN } = o;
  const vocab = scratch.vocab;
  const window = penaltyLastN < 0 ? history.length : Math.min(penaltyLastN, history.length);
  if (scratch.touched.length < window) scratch.touched = new Int32Array(Math.max(window, 2 * scratch.touched.length));
  const counts = scratch.counts;
  const touched = scratch.touched;
  let distinct = 0;
  for (let j = history.length - window; j < history.length; j++) {
    const t = history[j]!;
    if (!(Number.isInteger(t) && t >= 0 && t < vocab)) continue;
    if (counts[t]++ === 0) touched[distinct++] = t;
  }
  const work = scratch.work;
  work.set(logits);
  for (let j = 0; j < distinct; j++) {
    const t = touched[j]!;
    let v = work[t]!;
    if (rep !== 1) v = v > 0 ? v / rep : v * rep;
    work[t] = v - counts[t]! * freq - presence;
    counts[t] = 0;
  }
  return work;
}
