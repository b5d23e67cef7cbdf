/** `--psk FILE` for `generate --swarm` and `chat --swarm`: the key is read and the client joins a private swarm. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFrom } from '../../src/inference/generate.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { openModel, type LoadedModelSource } from '../../src/model/load.js';
import { wholeModelGeneration } from '../../src/server/services/generation.js';
import { createBlockServer, type BlockServer } from '../../src/server/block-server.js';
import { modelIdOf } from '../../src/swarm/model-id.js';
import { createSwarmNode, type SwarmNode } from '../../src/swarm/node.js';
import { generatePsk, savePsk } from '../../src/swarm/psk.js';
import { runCorolla } from '../support/cli.js';
import { tempDir } from '../support/files.js';
import { STORIES_GGUF } from '../support/models.js';
import { FAST } from '../support/swarm.js';

const dir = tempDir('corolla-psk-');
const keyFile = path.join(dir, 'swarm.key');
const badKey = path.join(dir, 'bad.key');
let source: LoadedModelSource;
const nodes: SwarmNode[] = [];
const servers: BlockServer[] = [];
let bootstrap: string;

beforeAll(async () => {
  const psk = generatePsk();
  await savePsk(keyFile, psk);
  fs.writeFileSync(badKey, 'not a key\n');
  source = await openModel(STORIES_GGUF);
  const modelId = await modelIdOf(source);
  const boot = await createSwarmNode({ psk });
  nodes.push(boot);
  bootstrap = boot.multiaddrs[0]!;
  const node = await createSwarmNode({ psk, bootstrap: [bootstrap] });
  nodes.push(node);
  servers.push(await createBlockServer({ node, source }, { modelId, range: 'all', maxBatch: 1, computeThroughput: 1000, registryOptions: FAST, services: { generation: wholeModelGeneration() } }));
});

afterAll(async () => {
  for (const server of servers) await server.stop();
  await Promise.all(nodes.map((node) => node.stop()));
  source?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('--psk', () => {
  it('generate --swarm --psk joins a private swarm and prints the local text', async () => {
    const local = await LocalModel.open(STORIES_GGUF);
    let expected = '';
    for await (const event of generateFrom(local, 'Once upon a time', { temperature: 0, maxTokens: 12 })) expected += event.text;
    await local.close();
    const result = await runCorolla(['generate', '--swarm', '--psk', keyFile, '--bootstrap', bootstrap, '--model', STORIES_GGUF, '--prompt', 'Once upon a time', '--temperature', '0', '--max-tokens', '12']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(expected);
    expect(result.stderr).toMatch(/\[swarm\] session route: \[0,5\)@/);
  }, 120_000);

  it.each(['generate', 'chat'])('%s --swarm reads the key with the swarm-key reader (a bad file is refused)', async (command) => {
    const result = await runCorolla([command, '--swarm', '--psk', badKey, '--bootstrap', bootstrap, '--model', STORIES_GGUF]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(badKey);
    expect(result.stderr).toMatch(/expected 3 lines/);
  });

  it('--psk without --swarm is a usage error', async () => {
    const result = await runCorolla(['generate', '--psk', keyFile, '--model', STORIES_GGUF]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--psk is for --swarm/);
  });
});
