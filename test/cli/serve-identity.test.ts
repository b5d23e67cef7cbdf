/** `corolla serve` with an Ethereum account: it logs the address (never the key) and says the registry check is skipped. */
import { afterAll, describe, expect, it } from 'vitest';
import { privateKeyToAccount } from 'viem/accounts';
import { killCorollaProcesses, runCorolla, spawnCorolla } from '../support/cli.js';
import { STORIES_GGUF } from '../support/models.js';

const KEY = '0x' + '5a'.repeat(32);

afterAll(() => killCorollaProcesses());

describe('corolla serve --private-key', () => {
  it('logs the address only, and that no registry was given to check', async () => {
    const serve = spawnCorolla(['serve', '--model', STORIES_GGUF, '--blocks', '0:5', '--max-batch', '1'], { env: { COROLLA_PRIVATE_KEY: KEY } });
    expect(await serve.firstLine).toMatch(/^ready \S+ 0:5$/);
    const stderr = serve.stderr();
    expect(stderr).toContain(`Ethereum account ${privateKeyToAccount(KEY as `0x${string}`).address}`);
    expect(stderr).toContain('registration check skipped: no --registry given');
    expect(stderr.toLowerCase()).not.toContain('5a5a5a5a');
    serve.child.kill('SIGTERM');
  });

  it('refuses a bad key before loading anything, without quoting it', async () => {
    const bad = '0x' + 'f'.repeat(63) + 'g';
    const result = await runCorolla(['serve', '--model', STORIES_GGUF, '--blocks', '0:5', '--private-key', bad]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/must be 32 bytes as 64 hex digits/);
    expect(result.stderr).not.toContain('ffffffff');
  });
});
