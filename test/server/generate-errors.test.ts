/** Whole-model generation failures: the peer learns a code, never the text of an engine or unexpected exception. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteGenerate } from '../../src/client/generate-client.js';
import { KernelError } from '../../src/engine/errors.js';
import type { LoadedModelSource } from '../../src/model/load.js';
import { lineLogger } from '../../src/util/logger.js';
import { openStories } from '../support/models.js';
import { startTestServer, type TestServer } from '../support/servers.js';

let source: LoadedModelSource;
let t: TestServer;
const logged: string[] = [];

beforeAll(async () => {
  source = await openStories();
  t = await startTestServer(source, { range: 'all', maxCacheTokens: 1024 }, { logger: lineLogger((line) => logged.push(line)) });
});
afterAll(async () => {
  await t?.stop();
  source?.close();
});

async function collect(iterable: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const token of iterable) out.push(token);
  return out;
}

describe('generation failures', () => {
  it.each([
    ['a kernel error', () => new KernelError('span [0, 5) failed to run: onnxruntime: Non-zero status code at /onnxruntime/src/attention.cc:42')],
    ['an unexpected exception', () => new Error('ENOENT /home/secret/model.onnx')],
  ])('reach the client as INTERNAL "internal error" for %s, and the operator sees the text', async (_, failure) => {
    const step = t.server.span.step;
    t.server.span.step = () => Promise.reject(failure());
    logged.length = 0;
    try {
      const error = await collect(remoteGenerate(t.client.libp2p, t.server.peerId, { prompt: [1, 2], maxTokens: 3 })).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'INTERNAL', message: 'internal error' });
      expect(logged.join('\n')).toMatch(/generation failed: (KernelError: span \[0, 5\) failed to run|Error: ENOENT \/home\/secret)/);
    } finally {
      t.server.span.step = step;
    }
  });
});
