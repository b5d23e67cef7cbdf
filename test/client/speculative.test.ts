/**
 * Speculative decoding over real block servers (stories260K, memory transport): each verification is one multi-token
 * step through every hop, rejected proposals are rewound on the servers by the next step's position, and the
 * greedy output equals local plain decoding, through 1 and 3 servers and across a failover in the middle (whose
 * replay carries the rewinds too).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RemoteModel } from '../../src/client/remote-model.js';
import { generate } from '../../src/inference/generate.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { STORIES_GGUF } from '../support/models.js';
import { localReference } from '../support/reference.js';
import { FAST, startTestSwarm, type TestSwarm } from '../support/swarm.js';

const PROMPT = 'Once upon a time, there was a little girl named Lily. Lily loved to play with her ball. One day, Lily';
const MAX_TOKENS = 60;
const SPECULATIVE = { proposer: 'ngram', k: 4 } as const;

let source: LoadedModelSource;
let reference: Awaited<ReturnType<typeof localReference>>;
beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  reference = await localReference(source, PROMPT, MAX_TOKENS);
});
afterAll(() => source?.close());

let swarm: TestSwarm | undefined;
let model: RemoteModel | undefined;
afterEach(async () => {
  await model?.close();
  await swarm?.stop();
  model = undefined;
  swarm = undefined;
});

async function openClient(s: TestSwarm): Promise<RemoteModel> {
  return RemoteModel.open({ model: STORIES_GGUF, modelId: s.modelId, registryOptions: FAST, coverageTimeoutMs: 20_000 }, { node: await s.client() });
}

describe('speculative decoding through block servers', () => {
  for (const spans of [[{ start: 0, end: 5 }], [{ start: 0, end: 2 }, { start: 2, end: 4 }, { start: 4, end: 5 }]]) {
    it(`${spans.length} server(s): greedy ids and text equal local plain decoding, in fewer steps`, async () => {
      swarm = await startTestSwarm(source, spans);
      model = await openClient(swarm);
      const stream = model.generate(PROMPT, { temperature: 0, maxTokens: MAX_TOKENS, stopTokens: [], speculative: SPECULATIVE });
      const ids: number[] = [];
      let text = '';
      for await (const event of stream) {
        if (event.token >= 0) ids.push(event.token);
        text += event.text;
      }
      expect(ids).toEqual(reference.tokens);
      expect(text).toBe(reference.text);
      const s = stream.stats.speculation!;
      expect(s.accepted).toBeGreaterThan(0);
      expect(s.proposed).toBeGreaterThan(s.accepted); // some were rejected, so servers were rewound
      expect(stream.stats.decodeSteps).toBeLessThan(MAX_TOKENS - 1);
    });
  }

  it('a server killed mid-generation: failover replays the history with its rewinds, output unchanged', async () => {
    swarm = await startTestSwarm(source, [{ start: 0, end: 2 }, { start: 2, end: 4 }, { start: 2, end: 4 }, { start: 4, end: 5 }]);
    model = await openClient(swarm);
    const session = await model.openSession(reference.ids.length + MAX_TOKENS);
    const s = swarm;
    const stream = generate(session, model.tokenizer, reference.ids, { temperature: 0, maxTokens: MAX_TOKENS, stopTokens: [], speculative: SPECULATIVE });
    const ids: number[] = [];
    let killed: string | undefined;
    for await (const event of stream) {
      ids.push(event.token);
      if (ids.length === 30 && !killed) await s.kill((killed = session.swarm.route[1]!.peerId));
    }
    expect(ids).toEqual(reference.tokens);
    const stats = session.swarm.stats;
    expect(stats.failovers).toBe(1);
    expect(stats.replayMismatches).toBe(0);
    expect(session.swarm.route.some((hop) => hop.peerId === killed)).toBe(false);
    expect(stream.stats.speculation!.proposed).toBeGreaterThan(stream.stats.speculation!.accepted);
    await session.close();
  });
});
