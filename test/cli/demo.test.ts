/**
 * `corolla demo --once`: the newcomer's first command. It brings up a bootstrap peer, servers and a gateway, prints
 * the dashboard, chat and OpenAI URLs, streams a generation through the gateway (the same text as local greedy
 * generation), and stops everything.
 */
import { afterAll, expect, it } from 'vitest';
import { generateText } from '../../src/inference/generate.js';
import { LocalModel } from '../../src/inference/local-model.js';
import { killCorollaProcesses, runCorolla } from '../support/cli.js';
import { tempDir } from '../support/files.js';
import { STORIES_GGUF } from '../support/models.js';

afterAll(killCorollaProcesses);

it('brings up a swarm and a gateway, prints their URLs, streams the greedy text through the gateway, and stops', async () => {
  const prompt = 'Once upon a time';
  const { code, stdout, stderr } = await runCorolla(['demo', '--once', '--port', '0', '--servers', '2', '--max-tokens', '40', '--temperature', '0', '--data-dir', tempDir('corolla-demo-')], { timeoutMs: 180_000 });
  expect(code, stderr).toBe(0);
  expect(stderr).toMatch(/dashboard\s+http:\/\/127\.0\.0\.1:\d+\/dashboard/);
  expect(stderr).toMatch(/chat\s+http:\/\/127\.0\.0\.1:\d+\/chat/);
  expect(stderr).toMatch(/OpenAI base URL\s+http:\/\/127\.0\.0\.1:\d+\/v1/);
  expect(stderr).toContain('recorded in the ledger');
  const local = await LocalModel.open(STORIES_GGUF);
  try {
    expect(stdout).toBe(`${prompt}${await generateText(local, prompt, { maxTokens: 40, temperature: 0 })}\n`);
  } finally {
    await local.close();
  }
}, 200_000);
