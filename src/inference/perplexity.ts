/**
 * Perplexity of a text under a local model and, against a base model, the mean KL divergence and top-1 agreement
 * per token, teacher-forced, as llama.cpp's perplexity tool computes them (`--kl-divergence` for the latter).
 *
 * Scoring (llama.cpp's, with one difference for short texts):
 * - The text is tokenized with the model's tokenizer and BOS goes first.
 * - With `ctx`, the tokens are cut into floor(n / ctx) windows of ctx tokens, each evaluated from an empty cache
 *   with its first token replaced by BOS; only the second half of each window is scored (the predictions at
 *   positions ctx/2 … ctx−2), so every scored token has at least ctx/2 tokens of context. Leftover tokens are
 *   dropped. This is llama.cpp's chunking (it also wants 2·ctx tokens at least; we need one window).
 * - Without `ctx`, the whole text is one window and every prediction after BOS is scored (n − 1 tokens).
 * - ppl = exp(mean −log p(token)); KL(base ‖ model) = Σ p_base (log p_base − log p_model) per scored position,
 *   averaged; top-1 agreement = the share of positions where both argmaxes agree. Softmaxes run in f64.
 */
import type { LocalModel } from './local-model.js';
import { PerplexityInputError } from './errors.js';
import { progressTask, type OnProgress } from '../util/progress.js';

export interface PerplexityOptions {
  /** Window length in tokens (llama.cpp's n_ctx); default: the whole text as one window, all scored. */
  readonly ctx?: number;
  /** With a base model: KL divergence from its distribution and top-1 agreement with it. */
  readonly base?: LocalModel;
  readonly onProgress?: OnProgress;
}

export interface PerplexityResult {
  /** Tokens scored. */
  readonly tokens: number;
  readonly ppl: number;
  /** Mean KL(base ‖ model) in nats (with a base model). */
  readonly klMean?: number;
  /** Share of scored positions where the model's argmax equals the base model's (with a base model). */
  readonly top1Agree?: number;
}

/** A window of tokens and the rows of it that are scored: logits at row r predict ids[r + 1]. */
export interface ScoredWindow {
  readonly ids: readonly number[];
  readonly firstScored: number;
}

/** llama.cpp's windows over `ids` (which start with BOS), or one window over all of them. */
export function perplexityWindows(ids: readonly number[], bos: number, ctx?: number): ScoredWindow[] {
  if (ctx === undefined) {
    if (ids.length < 2) throw new PerplexityInputError(`the text gives ${ids.length} token(s) with BOS; at least 2 are needed`);
    return [{ ids, firstScored: 0 }];
  }
  if (!Number.isInteger(ctx) || ctx < 4) throw new PerplexityInputError(`ctx must be an integer ≥ 4, got ${ctx}`);
  const count = Math.floor(ids.length / ctx);
  if (count === 0) throw new PerplexityInputError(`the text gives ${ids.length} tokens with BOS, fewer than one window of ${ctx}`);
  return Array.from({ length: count }, (_, c) => ({ ids: [bos, ...ids.slice(c * ctx + 1, (c + 1) * ctx)], firstScored: ctx / 2 | 0 }));
}

/** Teacher-forced logits of `ids` from an empty cache, rows [from, ids.length − 1), handed out in groups of rows. */
export async function windowLogits(model: LocalModel, ids: readonly number[], from: number, onRows: (first: number, rows: Float32Array[]) => void): Promise<void> {
  const sessionId = `perplexity-${++windowCounter}`;
  model.span.openSession(sessionId, ids.length);
  try {
    const hidden = await model.span.step({ sessionId, hidden: model.embeddings.embed(ids), position: 0 });
    const H = model.span.hiddenSize;
    for (let r = from; r < ids.length - 1; r += ROWS_PER_HEAD_CALL) {
      const end = Math.min(ids.length - 1, r + ROWS_PER_HEAD_CALL);
      const rows: Float32Array[] = [];
      for (let i = r; i < end; i++) rows.push(hidden.subarray(i * H, (i + 1) * H));
      onRows(r, await model.lmHead.logitsBatch(rows));
    }
  } finally {
    model.span.closeSession(sessionId);
  }
}

let windowCounter = 0;
/** Bounds the logits held at once (rows × vocabulary floats). */
const ROWS_PER_HEAD_CALL = 64;

/** log-softmax of `logits` in f64. */
function logSoftmax(logits: Float32Array, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** Mean KL(base ‖ other) per row and the share of rows whose argmaxes agree, over paired logit rows. */
export function compareLogits(base: readonly Float32Array[], other: readonly Float32Array[]): { klMean: number; top1Agree: number } {
  if (base.length !== other.length || base.length === 0) throw new PerplexityInputError(`cannot compare ${base.length} rows with ${other.length}`);
  const p = new Float64Array(base[0]!.length);
  const q = new Float64Array(base[0]!.length);
  let kl = 0;
  let agree = 0;
  base.forEach((row, i) => {
    logSoftmax(row, p);
    logSoftmax(other[i]!, q);
    kl += klOf(p, q);
    if (argmax(row) === argmax(other[i]!)) agree++;
  });
  return { klMean: kl / base.length, top1Agree: agree / base.length };
}

/** KL(p ‖ q) of two log-distributions. */
function klOf(logP: Float64Array, logQ: Float64Array): number {
  let kl = 0;
  for (let j = 0; j < logP.length; j++) {
    const p = Math.exp(logP[j]!);
    if (p > 0) kl += p * (logP[j]! - logQ[j]!);
  }
  return kl;
}

/** Scores token ids that already start with BOS. */
export async function perplexityOfIds(model: LocalModel, ids: readonly number[], options: PerplexityOptions = {}): Promise<PerplexityResult> {
  const bos = model.tokenizer.special.bos ?? ids[0]!;
  const windows = perplexityWindows(ids, bos, options.ctx);
  const base = options.base;
  if (base && base.config.vocabSize !== model.config.vocabSize) {
    throw new PerplexityInputError(`the base model has a vocabulary of ${base.config.vocabSize}, the model ${model.config.vocabSize}`);
  }
  const total = windows.reduce((sum, w) => sum + (w.ids.length - 1 - w.firstScored), 0);
  const progress = progressTask(options.onProgress, 'scoring', 'items');
  const vocab = model.config.vocabSize;
  const logp = new Float64Array(vocab);
  const baseLogp = new Float64Array(vocab);
  let nll = 0;
  let kl = 0;
  let agree = 0;
  let done = 0;
  for (const window of windows) {
    const baseRows = new Map<number, Float32Array>();
    if (base) await windowLogits(base, window.ids, window.firstScored, (first, rows) => rows.forEach((row, i) => baseRows.set(first + i, row)));
    await windowLogits(model, window.ids, window.firstScored, (first, rows) => {
      rows.forEach((row, i) => {
        const r = first + i;
        logSoftmax(row, logp);
        nll -= logp[window.ids[r + 1]!]!;
        const reference = baseRows.get(r);
        if (reference) {
          logSoftmax(reference, baseLogp);
          kl += klOf(baseLogp, logp);
          if (argmax(row) === argmax(reference)) agree++;
          baseRows.delete(r);
        }
      });
      done += rows.length;
      progress.update(done, total);
    });
  }
  progress.done(`scored ${total} tokens`);
  return { tokens: total, ppl: Math.exp(nll / total), ...(base ? { klMean: kl / total, top1Agree: agree / total } : {}) };
}

/** Tokenizes `text` with the model's tokenizer, BOS first, and scores it. */
export async function perplexity(model: LocalModel, text: string, options: PerplexityOptions = {}): Promise<PerplexityResult> {
  const tokenizer = model.tokenizer;
  const bos = tokenizer.special.bos;
  if (bos === undefined) throw new PerplexityInputError('the model has no BOS token');
  return perplexityOfIds(model, [bos, ...tokenizer.encode(text, { addBos: false })], options);
}
