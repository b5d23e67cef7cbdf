/**
 * A long command line (issue 7: "a 6,000-token prompt dies with a segmentation fault"). onnxruntime-node 1.30's
 * telemetry ran a recursive std::regex over /proc/self/cmdline when the first graph was built, so any command line
 * past ~30 KB crashed the process with SIGSEGV before the prompt was even read. The CLI turns that telemetry off.
 */
import { afterAll, expect, it } from 'vitest';
import { killCorollaProcesses, runCorolla } from '../support/cli.js';

afterAll(killCorollaProcesses);

const filler = (bytes: number) => 'the cat sat on the mat '.repeat(Math.ceil(bytes / 23)).slice(0, bytes);

it('generates with a 40 KB command line (old code: SIGSEGV while loading the model)', async () => {
  const result = await runCorolla(['generate', '--prompt', 'Once upon a time', '--stop', filler(40_000), '--max-tokens', '4', '--temperature', '0']);
  expect(result.stderr).not.toMatch(/Segmentation/);
  expect(result.code).toBe(0);
  expect(result.stdout.length).toBeGreaterThan(0);
});

it('a prompt longer than the context is a clear REQUEST_TOO_LARGE error, not a crash', async () => {
  const result = await runCorolla(['generate', '--prompt', filler(40_000), '--max-tokens', '4']);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/more than the model's context of \d+/);
});
