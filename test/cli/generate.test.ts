/**
 * `corolla generate --swarm`: the CLI in a child process joins a TCP swarm of real block servers through the
 * bootstrap address and prints exactly the text local generation prints.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generate } from '../../src/inference/generate.js';
import { loadLocalModel } from '../../src/inference/local-model.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { createTokenizer } from '../../src/model/tokenizer/index.js';
import { createBlockServer, type BlockServer } from '../../src/server/block-server.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { FAST } from '../swarm/helpers.js';
import { modelIdFor, openModel, STORIES_GGUF } from './support.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PROMPT = 'Once upon a time';
let source: LoadedModelSource;
const nodes: SwarmNode[] = [];
const servers: BlockServer[] = [];

beforeAll(async () => {
  source = await openModel(STORIES_GGUF);
  const modelId = await modelIdFor(source);
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

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/corolla.js'), ...args], { cwd: ROOT, env: { ...process.env, COROLLA_QUIET: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

it('generate --swarm prints the same text as local generation', async () => {
  const tokenizer = createTokenizer(source.tokenizer!);
  const local = await loadLocalModel(source);
  let expected = '';
  const ids = tokenizer.encode(PROMPT);
  for await (const event of generate(await local.openSession(ids.length + 30), tokenizer, ids, { temperature: 0, maxTokens: 30 })) expected += event.text;
  await local.close();

  const bootstrap = nodes[0]!.multiaddrs[0]!;
  const result = await run(['generate', '--swarm', '--bootstrap', bootstrap, '--model', STORIES_GGUF, '--prompt', PROMPT, '--temperature', '0', '--max-tokens', '30', '--stats']);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout).toBe(expected);
  expect(result.stderr).toMatch(/"generated_tokens":\d+/);
}, 120_000);
