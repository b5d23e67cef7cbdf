import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * Test files marked "needs ../shared/models" use real tokenizers and checkpoints that live beside the checkout (CI
 * has them). A fresh clone without that folder runs everything else and says what it left out.
 */
const SHARED_MODELS = path.resolve(import.meta.dirname, '../shared/models');
const MARK = 'needs ../shared/models';

function filesNeedingShared(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return filesNeedingShared(full);
    return entry.name.endsWith('.test.ts') && fs.readFileSync(full, 'utf8').includes(MARK) ? [path.relative(import.meta.dirname, full)] : [];
  });
}

const skipped = fs.existsSync(SHARED_MODELS) ? [] : filesNeedingShared(path.join(import.meta.dirname, 'test'));
if (skipped.length > 0) {
  console.warn(`[corolla] ${SHARED_MODELS} not found: skipping ${skipped.length} test files that need it:\n  ${skipped.join('\n  ')}`);
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...skipped],
    setupFiles: ['src/util/polyfills.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
