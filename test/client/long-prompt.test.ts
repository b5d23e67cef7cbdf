/**
 * A prompt filling the whole context through a swarm (issue 7): the client sends it in prefill chunks, a failover in
 * the middle of the prompt replays those chunks, and the greedy output equals the local model's.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RemoteModel } from '../../src/client/remote-model.js';
import { DEFAULT_PREFILL_CHUNK_TOKENS } from '../../src/engine/defaults.js';
import { generate, generateFrom } from '../../src/inference/generate.js';
import type { InferenceSession } from '../../src/inference/language-model.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { STORIES_GGUF } from '../support/models.js';
import { FAST, startTestSwarm, type TestSwarm } from '../support/swarm.js';

let source: LoadedModelSource;
let swarm: TestSwarm;
let model: RemoteModel;
beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  swarm = await startTestSwarm(source, [{ start: 0, end: 3 }, { start: 0, end: 3 }, { start: 3, end: 5 }]);
  model = await RemoteModel.open({ model: STORIES_GGUF, modelId: swarm.modelId, registryOptions: FAST, coverageTimeoutMs: 20_000 }, { node: await swarm.client() });
});
afterAll(async () => {
  await model?.close();
  await swarm?.stop();
  source?.close();
});

const MAX_TOKENS = 4;
const greedy = { temperature: 0, stopTokens: [] as number[], maxTokens: MAX_TOKENS };

async function collect(stream: AsyncIterable<{ token: number }>): Promise<number[]> {
  const ids: number[] = [];
  for await (const { token } of stream) if (token >= 0) ids.push(token);
  return ids;
}

it('a prompt of context − maxTokens, with a server killed mid-prompt, gives the local greedy output', async () => {
  const context = source.config.maxPositionEmbeddings;
  const prompt = Array.from({ length: context - MAX_TOKENS }, (_, i) => 3 + ((i * 37 + 11) % 500));
  const local = await LocalModel.load(source);
  const expected = await collect(generateFrom(local, prompt, greedy));
  await local.close();

  const remote = await model.openSession(context);
  let steps = 0;
  const killing: InferenceSession = {
    next: async (ids, options) => {
      if (++steps === 4) await swarm.kill(remote.swarm.route[0]!.peerId); // after 3 chunks of the prompt
      return remote.next(ids, options);
    },
    close: () => remote.close(),
  };
  const tokens = await collect(generate(killing, undefined, prompt, greedy));
  expect(tokens).toEqual(expected);
  const stats = remote.swarm.stats;
  expect(stats.failovers).toBe(1);
  expect(stats.replayMismatches).toBe(0);
  // the prompt went out in chunks (old code: one step of the whole prompt)
  expect(stats.steps).toBe(Math.ceil(prompt.length / DEFAULT_PREFILL_CHUNK_TOKENS) + MAX_TOKENS - 1);
  expect(stats.recoveries[0]!.replayedSteps).toBe(4); // three chunks of history and the one in flight
  await remote.close();

  // one token more does not fit: a typed error before any server is asked
  await expect(collect(model.generate([...prompt, 7], greedy))).rejects.toMatchObject({ code: 'REQUEST_TOO_LARGE' });
});
