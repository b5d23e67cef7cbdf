/**
 * `corolla generate --swarm`: the CLI in a child process joins a TCP swarm of real block servers through the
 * bootstrap address and prints exactly the text local generation prints.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generate } from '../../src/inference/generate.js';
import { loadLocalModel } from '../../src/inference/local-model.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { createTokenizer } from '../../src/model/tokenizer/index.js';
import { createBlockServer, type BlockServer } from '../../src/server/block-server.js';
import { modelIdOf } from '../../src/swarm/model-id.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { runCorolla } from '../support/cli.js';
import { STORIES_GGUF } from '../support/models.js';
import { FAST } from '../support/swarm.js';

const PROMPT = 'Once upon a time';
let source: LoadedModelSource;
const nodes: SwarmNode[] = [];
const servers: BlockServer[] = [];

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  const modelId = await modelIdOf(source);
  const boot = await createSwarmNode();
  nodes.push(boot);
  for (const range of [{ start: 0, end: 3 }, { start: 3, end: 5 }]) {
    const node = await createSwarmNode({ bootstrap: [boot.multiaddrs[0]!] });
    nodes.push(node);
    servers.push(await createBlockServer({ node, source }, { modelId, range, maxBatch: 1, computeThroughput: 1000, registryOptions: FAST }));
  }
});

afterAll(async () => {
  for (const server of servers) await server.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  source?.close();
});

it('generate --swarm prints the same text as local generation', async () => {
  const tokenizer = createTokenizer(source.tokenizer!);
  const local = await loadLocalModel(source);
  let expected = '';
  const ids = tokenizer.encode(PROMPT);
  for await (const event of generate(await local.openSession(ids.length + 30), tokenizer, ids, { temperature: 0, maxTokens: 30 })) expected += event.text;
  await local.close();

  const bootstrap = nodes[0]!.multiaddrs[0]!;
  const result = await runCorolla(['generate', '--swarm', '--bootstrap', bootstrap, '--model', STORIES_GGUF, '--prompt', PROMPT, '--temperature', '0', '--max-tokens', '30', '--stats'], { env: { COROLLA_QUIET: '' }, timeoutMs: 120_000 });
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout).toBe(expected);
  expect(result.stderr).toMatch(/"generated_tokens":\d+/);
}, 120_000);
