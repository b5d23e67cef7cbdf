/**
 * Whole-model (LlamaNet-style) servers: as a one-hop block route when that is fastest, and running the whole
 * generation remotely over /corolla/generate/1.0.0. Also the lossy wire codecs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BanList } from '../../src/client/bans.js';
import { RemoteModel } from '../../src/client/remote-model.js';
import { argmax } from '../../src/inference/sampling/index.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { STORIES_GGUF } from '../support/models.js';
import { localReference } from '../support/reference.js';
import { FAST, startTestSwarm, type TestSwarm } from '../support/swarm.js';

const PROMPT = 'Once upon a time';
const MAX_TOKENS = 30;
let source: LoadedModelSource;
let reference: Awaited<ReturnType<typeof localReference>>;
let swarm: TestSwarm;
let model: RemoteModel;

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  reference = await localReference(source, PROMPT, MAX_TOKENS);
  // A fast whole-model server and a much slower split route: the claims differ by far more (about 40 ms a step) than
  // a round trip measured on a loaded machine can, so the first route is the whole-model server every time.
  swarm = await startTestSwarm(source, ['all', { start: 0, end: 2 }, { start: 2, end: 5 }], (i) => ({ computeThroughput: i === 0 ? 2000 : 50 }));
  model = await openClient();
});

/** A client that has found all three servers (the split route alone already covers the model). */
async function openClient(): Promise<RemoteModel> {
  const client = await RemoteModel.open({ model: STORIES_GGUF, modelId: swarm.modelId, registryOptions: FAST, coverageTimeoutMs: 20_000 }, { node: await swarm.client() });
  for (let round = 0; (await client.directory.records({ fresh: round > 0 })).length < swarm.servers.length; round++) {
    if (round === 50) throw new Error('the client did not find all three servers');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return client;
}

afterAll(async () => {
  await model?.close();
  await swarm?.stop();
  source?.close();
});

describe('whole-model servers', () => {
  it('are a one-hop block route when fastest, with identical logits', async () => {
    const whole = swarm.servers[0]!.server.peerId;
    const session = await model.openSession(reference.ids.length + MAX_TOKENS);
    expect(session.swarm.route).toEqual([{ peerId: whole, start: 0, end: 5, transport: 'libp2p' }]);
    let ids = reference.ids;
    for (let i = 0; i < MAX_TOKENS; i++) {
      const logits = await session.next(ids);
      expect(logits).toEqual(reference.logits[i]);
      ids = [argmax(logits)];
    }
    await session.close();
  });

  it('run a whole generation remotely (generate protocol), giving the same tokens and text', async () => {
    const ranked = await model.wholeModelServers(64);
    expect(ranked.map((r) => r.record.peerId)).toEqual([swarm.servers[0]!.server.peerId]);
    expect(ranked[0]!.load).toBeDefined();
    const tokens: number[] = [];
    let text = '';
    const stream = model.generateOnWholeModelServer(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0, stopTokens: [] });
    for await (const event of stream) {
      if (event.token >= 0) tokens.push(event.token);
      text += event.text;
    }
    expect(tokens).toEqual(reference.tokens);
    expect(text).toBe(reference.text);
    // the same stats as the local loop: the one whole-model server did everything
    expect(stream.stats).toMatchObject({ promptTokens: reference.ids.length, generatedTokens: MAX_TOKENS, decodeSteps: MAX_TOKENS - 1, finishReason: 'length' });
    expect(stream.stats.prefillMs).toBeGreaterThan(0);
    expect(stream.stats.servers).toEqual([
      { peerId: swarm.servers[0]!.server.peerId, blocks: { start: 0, end: 5 }, promptTokens: reference.ids.length, generatedTokens: MAX_TOKENS, replayedTokens: 0, failed: false },
    ]);
  });

  it('stop strings end a remote generation early', async () => {
    const stop = reference.text.slice(20, 26);
    let text = '';
    const stream = model.generateOnWholeModelServer(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0, stopTokens: [], stop: [stop] });
    for await (const event of stream) text += event.text;
    expect(text).toBe(reference.text.slice(0, reference.text.indexOf(stop)));
    expect(stream.stats.finishReason).toBe('stop');
  });
});

describe('wire codecs', () => {
  it.each(['f16', 'int8'] as const)('%s hidden states stay close to the lossless run', async (codec) => {
    // ban the whole-model server so that the states cross two hops
    const bans = new BanList();
    bans.ban(swarm.servers[0]!.server.peerId);
    const lossy = await RemoteModel.open({ model: STORIES_GGUF, modelId: swarm.modelId, registryOptions: FAST, codec }, { node: await swarm.client(), bans });
    try {
      const session = await lossy.openSession(reference.ids.length + 8);
      expect(session.swarm.route.map((hop) => [hop.start, hop.end])).toEqual([[0, 2], [2, 5]]);
      let ids = reference.ids;
      for (let i = 0; i < 4; i++) {
        const logits = await session.next(ids);
        const ref = reference.logits[i]!;
        let worst = 0;
        for (let j = 0; j < ref.length; j++) worst = Math.max(worst, Math.abs(logits[j]! - ref[j]!));
        // f16 rounds to 2^-11 relative, int8 blockwise to 1/254 of each block's max
        expect(worst).toBeLessThan(codec === 'f16' ? 0.05 : 0.5);
        ids = [reference.tokens[i]!];
      }
      await session.close();
    } finally {
      await lossy.close();
    }
  });
});

describe('failover from a whole-model hop', () => {
  it('a dying whole-model server is replaced by the split route, replaying its history, output unchanged', async () => {
    const whole = swarm.servers[0]!.server.peerId;
    // A client that has measured no server yet plans from the servers' claims (the whole model 40× faster). The shared
    // `model` has timed the whole-model server in the tests above, and on a loaded machine that time can lose to the
    // split route's claims.
    const fresh = await openClient();
    try {
      const session = await fresh.openSession(reference.ids.length + MAX_TOKENS);
      expect(session.swarm.route.map((hop) => hop.peerId)).toEqual([whole]);
      let ids = reference.ids;
      for (let i = 0; i < MAX_TOKENS; i++) {
        if (i === 12) await swarm.kill(whole);
        const logits = await session.next(ids);
        expect(logits).toEqual(reference.logits[i]);
        ids = [argmax(logits)];
      }
      expect(session.swarm.route.map((hop) => [hop.start, hop.end])).toEqual([[0, 2], [2, 5]]);
      expect(session.swarm.stats.recoveries).toHaveLength(1);
      expect(session.swarm.stats.recoveries[0]).toMatchObject({ start: 0, end: 5, replayedSteps: 13 });
      await session.close();
    } finally {
      await fresh.close();
    }
  });
});
