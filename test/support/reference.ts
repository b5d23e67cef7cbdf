/** Greedy generation with the whole model in this process: the reference every distributed run must equal. */
import { generate } from '../../src/inference/generate.js';
import { loadLocalModel } from '../../src/inference/local-model.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { createTokenizer } from '../../src/model/tokenizer/index.js';

export async function localReference(source: LoadedModelSource, prompt: string, maxTokens: number): Promise<{ ids: number[]; tokens: number[]; text: string; logits: Float32Array[] }> {
  const tokenizer = createTokenizer(source.tokenizer!);
  const model = await loadLocalModel(source);
  const ids = tokenizer.encode(prompt);
  const session = await model.openSession(ids.length + maxTokens);
  const logits: Float32Array[] = [];
  const recorded = { next: async (next: readonly number[]) => { const out = await session.next(next); logits.push(out); return out; }, close: () => session.close() };
  const tokens: number[] = [];
  let text = '';
  for await (const event of generate(recorded, tokenizer, ids, { temperature: 0, maxTokens, stopTokens: [] })) {
    if (event.token >= 0) tokens.push(event.token);
    text += event.text;
  }
  await session.close();
  await model.close();
  return { ids, tokens, text, logits };
}
