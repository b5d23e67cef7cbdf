import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * Test files marked "needs ../shared/models" use real tokenizers and checkpoints that live beside the checkout (CI
 * has them). A fresh clone without that folder runs everything else and says what it left out.
 */
const SHARED_MODELS = path.resolve(import.meta.dirname, '../shared/models');
const MARK = 'needs ../shared/models';
/**
 * Files that start several computing processes, or bound times, throughput or stalls, say "runs alone": they run one at a
 * time after the rest, which runs two files at once (most of those wait on sockets and child processes, so two share
 * a 2-core machine well; vitest's default would be one at a time there).
 */
const ALONE = '// runs alone';

function filesMarked(dir: string, mark: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return filesMarked(full, mark);
    return entry.name.endsWith('.test.ts') && fs.readFileSync(full, 'utf8').includes(mark) ? [path.relative(import.meta.dirname, full)] : [];
  });
}

const TESTS = path.join(import.meta.dirname, 'test');
const skipped = fs.existsSync(SHARED_MODELS) ? [] : filesMarked(TESTS, MARK);
if (skipped.length > 0) {
  console.warn(`[corolla] ${SHARED_MODELS} not found: skipping ${skipped.length} test files that need it:\n  ${skipped.join('\n  ')}`);
}
const alone = filesMarked(TESTS, ALONE);
const exclude = ['**/node_modules/**', ...skipped];

export default defineConfig({
  test: {
    setupFiles: ['src/util/polyfills.ts'],
    globalSetup: ['test/support/build-cli.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'together', include: ['test/**/*.test.ts', 'src/**/*.test.ts'], exclude: [...exclude, ...alone], maxWorkers: Math.max(2, os.availableParallelism() - 1), sequence: { groupOrder: 0 } },
      },
      { extends: true, test: { name: 'alone', include: alone, exclude, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
