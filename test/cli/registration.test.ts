/**
 * The registration check hook of `corolla serve`: skipped (and said so) without --registry; a clear error without
 * --rpc-url; a typed ChainError naming the call when the registry cannot answer (on a real anvil chain). The checks
 * against a deployed AgentRegistry (registered, inactive, --register) wait for the contracts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateKeyToAccount } from 'viem/accounts';
import { ChainError } from '../../src/chain/errors.js';
import { checkRegistration } from '../../src/cli/registration.js';
import { UsageError } from '../../src/cli/errors.js';
import { lineLogger, silentLogger } from '../../src/util/logger.js';
import { freePort } from '../../src/util/processes.js';

const ANVIL = 'node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil';
const account = privateKeyToAccount(`0x${'5a'.repeat(32)}`);
const base = { name: 'node', peerId: '12D3KooWExamplePeer' };

let anvil: ChildProcess | undefined;
let rpcUrl = '';

beforeAll(async () => {
  const port = await freePort();
  anvil = spawn(ANVIL, ['--port', String(port), '--silent'], { detached: true, stdio: 'ignore' });
  rpcUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' }).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`anvil did not answer on ${rpcUrl} (${ANVIL})`);
});

afterAll(() => {
  if (anvil?.pid) process.kill(-anvil.pid, 'SIGKILL');
});

const log = silentLogger.forComponent('corolla:serve');

describe('checkRegistration', () => {
  it('is skipped, and says so, without --registry', async () => {
    const lines: string[] = [];
    await checkRegistration(account, base, lineLogger((line) => lines.push(line)).forComponent('corolla:serve'));
    expect(lines).toEqual([expect.stringContaining('registration check skipped: no --registry given')]);
  });

  it('needs an address and --rpc-url with --registry', async () => {
    await expect(checkRegistration(account, { ...base, registry: '0x1234' }, log)).rejects.toThrow(UsageError);
    await expect(checkRegistration(account, { ...base, registry: `0x${'12'.repeat(20)}` }, log)).rejects.toThrow(/--rpc-url/);
  });

  it('fails with a ChainError naming the call when the registry cannot answer (no contract there)', async () => {
    const error = await checkRegistration(account, { ...base, registry: `0x${'12'.repeat(20)}`, rpcUrl }, log).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChainError);
    expect((error as Error).message).toMatch(new RegExp(`isRegistered\\(${account.address}\\) on the AgentRegistry at 0x1212`));
  });
});
