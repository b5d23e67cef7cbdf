/**
 * The front door: an application that imports only the public entry runs a local generation and a swarm
 * generation (a bootstrap peer and two block servers on TCP loopback), and gets the same text from both.
 */
import { afterAll, describe, expect, it } from 'vitest';
import {
  createBlockServer,
  createSwarmNode,
  DEFAULT_MODEL_PATH,
  generateFrom,
  generateText,
  LocalModel,
  modelIdOf,
  openModel,
  RemoteModel,
  type BlockServer,
  type SwarmNode,
} from '../../src/index.js';

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

const PROMPT = 'Once upon a time';
const OPTIONS = { maxTokens: 24, temperature: 0 } as const;

describe('the public entry', () => {
  it('generates locally and through a swarm of two servers, with the same text and per-server attribution', async () => {
    const local = await LocalModel.open(DEFAULT_MODEL_PATH);
    cleanup.push(() => local.close());
    const expected = await generateText(local, PROMPT, OPTIONS);
    expect(expected.length).toBeGreaterThan(20);

    const boot: SwarmNode = await createSwarmNode();
    cleanup.push(() => boot.stop());
    const source = await openModel(DEFAULT_MODEL_PATH);
    cleanup.push(() => source.close());
    const modelId = await modelIdOf(source);
    const numBlocks = source.config.numLayers;
    const ranges = [
      { start: 0, end: 2 },
      { start: 2, end: numBlocks },
    ];
    for (const range of ranges) {
      const node = await createSwarmNode({ bootstrap: [boot.multiaddrs[0]!] });
      cleanup.push(() => node.stop());
      const server: BlockServer = await createBlockServer({ node, source }, { modelId, range });
      cleanup.push(() => server.stop());
    }

    const remote = await RemoteModel.open({ model: DEFAULT_MODEL_PATH, bootstrap: [boot.multiaddrs[0]!], coverageTimeoutMs: 30_000 });
    cleanup.push(() => remote.close());
    const stream = generateFrom(remote, PROMPT, OPTIONS);
    let text = '';
    for await (const event of stream) text += event.text;
    expect(text).toBe(expected);

    const { stats } = stream;
    expect(stats.generatedTokens).toBeGreaterThan(0);
    expect(stats.servers?.map((s) => s.blocks)).toEqual(ranges);
    for (const server of stats.servers!) {
      expect(server.promptTokens).toBe(stats.promptTokens);
      expect(server.generatedTokens).toBeGreaterThan(0);
    }
  });
});
