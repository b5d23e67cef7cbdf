/**
 * llama.cpp (through node-llama-cpp) as the reference implementation: greedy tokens and raw logits for a GGUF,
 * at an explicit thread count (2 threads can stall on these 2-vCPU machines, so tests use 1).
 */
import { getLlama, type Llama } from 'node-llama-cpp';

let llama: Promise<Llama> | undefined;
export function sharedLlama(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: 'never', logLevel: 'error' as never, progressLogs: false } as never);
  return llama;
}

export interface ReferenceRun {
  /** Greedy tokens after the prompt. */
  tokens: number[];
  /** Logits before each greedy token: logits[i] chose tokens[i]. */
  logits: Float32Array[];
}

export async function llamaCppGreedy(modelPath: string, prompt: readonly number[], steps: number, options: { threads?: number } = {}): Promise<ReferenceRun> {
  const l = await sharedLlama();
  const model = await l.loadModel({ modelPath });
  // An f32 KV cache, as ours: llama.cpp's default f16 cache alone moves logits by ~1e-1 on these models.
  const context = await model.createContext({
    threads: options.threads ?? 1,
    contextSize: Math.max(256, prompt.length + steps + 8),
    batchSize: 512,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  try {
    const sequence = context.getSequence();
    const vocab = (model as unknown as { fileInsights?: { vocabularySize?: number } }).fileInsights?.vocabularySize ?? 0;
    const toArray = (map: Map<number, number>) => {
      const out = new Float32Array(Math.max(vocab, ...map.keys()) + 1);
      for (const [id, v] of map) out[id] = v;
      return out;
    };
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    let input: (number | [number, { generateNext: { logits: true } }])[] = prompt.map((t, i) => (i === prompt.length - 1 ? [t, { generateNext: { logits: true } }] : t));
    for (let i = 0; i < steps; i++) {
      const results = await sequence.controlledEvaluate(input as never);
      const last = results[results.length - 1] as { next?: { logits?: Map<number, number> } } | undefined;
      const row = toArray(last!.next!.logits!);
      let best = 0;
      for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
      logits.push(row);
      tokens.push(best);
      input = [[best, { generateNext: { logits: true } }]];
    }
    return { tokens, logits };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/**
 * llama.cpp's teacher-forced logits along `tokens` (one evaluation, f32 KV cache): row i is the distribution
 * after tokens[0..i], for i in [from, tokens.length − 1).
 */
export async function llamaCppLogits(modelPath: string, tokens: readonly number[], options: { threads?: number; from?: number } = {}): Promise<Float32Array[]> {
  const l = await sharedLlama();
  const model = await l.loadModel({ modelPath });
  const context = await model.createContext({
    threads: options.threads ?? 1,
    contextSize: Math.max(256, tokens.length + 8),
    batchSize: 512,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  try {
    const from = options.from ?? 0;
    const vocab = (model as unknown as { fileInsights?: { vocabularySize?: number } }).fileInsights?.vocabularySize ?? 0;
    const input = tokens.map((t, i) => (i >= from && i < tokens.length - 1 ? [t, { generateNext: { logits: true } }] : t));
    const results = (await context.getSequence().controlledEvaluate(input as never)) as Array<{ next?: { logits?: Map<number, number> } } | undefined>;
    const rows: Float32Array[] = [];
    for (let i = from; i < tokens.length - 1; i++) {
      const map = results[i]!.next!.logits!;
      const row = new Float32Array(Math.max(vocab, ...map.keys()) + 1);
      for (const [id, v] of map) row[id] = v;
      rows.push(row);
    }
    return rows;
  } finally {
    await context.dispose();
    await model.dispose();
  }
}
