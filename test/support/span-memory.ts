/**
 * Child process of test/engine/staged-memory.test.ts: loads every block of a model as one span and prints, as JSON,
 * its resident memory (MB) before and after, and at its peak.
 *
 *   node --import tsx test/support/span-memory.ts <model.gguf> <staged|memory>
 */
import fs from 'node:fs';
import { loadSpan } from '../../src/engine/span-executor.js';
import { openModel } from '../../src/model/load.js';

const statusMb = (key: string) => {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${key}:`))!;
  return Number(/(\d+)/.exec(line)![1]) / 1024;
};
const [model, mode] = process.argv.slice(2);
const source = await openModel(model!);
const before = statusMb('VmRSS');
const span = await loadSpan(source, { start: 0, end: source.config.numLayers }, { stagingDir: mode === 'memory' ? null : undefined });
console.log(JSON.stringify({ before, after: statusMb('VmRSS'), peak: statusMb('VmHWM') }));
await span.dispose();
source.close();
