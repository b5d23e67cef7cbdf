import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: bin/ is plain JavaScript, without declarations.
import { buildCompiled, compiledEntry } from '../../bin/compiled.js';

const roots: string[] = [];
afterAll(() => roots.forEach((root) => fs.rmSync(root, { recursive: true, force: true })));

/** A checkout in miniature: src/cli/main.ts importing TypeScript and JSON beside it. */
function miniCheckout(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'corolla-compiled-'));
  roots.push(root);
  fs.mkdirSync(path.join(root, 'src/cli'), { recursive: true });
  fs.writeFileSync(path.join(root, 'src/cli/data.json'), '{ "factor": 3 }');
  fs.writeFileSync(path.join(root, 'src/cli/scale.ts'), 'interface Scaled { value: number }\nexport const scale = (x: number, by: number): Scaled => ({ value: x * by });\n');
  fs.writeFileSync(
    path.join(root, 'src/cli/main.ts'),
    "import data from './data.json' with { type: 'json' };\nimport { scale } from './scale.js';\nexport function main(args: string[]): number { return scale(Number(args[0]), data.factor).value; }\n",
  );
  return root;
}

/** Runs the compiled entry's `main` in a fresh node (no module cache), as `bin/corolla.js` would. */
function runCompiled(root: string, arg: string): number {
  const script = `const { main } = await import(${JSON.stringify(compiledEntry(root))}); process.stdout.write(String(main([${JSON.stringify(arg)}])));`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('bin/compiled.js: the CLI from compiled code only while it matches src/', () => {
  it('compiles TypeScript and copies JSON, and uses the build until src/ changes', async () => {
    const root = miniCheckout();
    expect(compiledEntry(root)).toBeNull();
    expect(await buildCompiled(root)).toBe(true);
    expect(compiledEntry(root)).toBe(`file://${path.join(root, '.compiled/cli/main.js')}`);
    expect(runCompiled(root, '7')).toBe(21);
    expect(await buildCompiled(root)).toBe(false);

    // An edit makes the build stale until it is rebuilt.
    fs.writeFileSync(path.join(root, 'src/cli/data.json'), '{ "factor": 5 }');
    expect(compiledEntry(root)).toBeNull();
    expect(await buildCompiled(root)).toBe(true);
    expect(runCompiled(root, '7')).toBe(35);
  });

  it('treats a renamed or added file as a change, whatever its mtime', async () => {
    const root = miniCheckout();
    await buildCompiled(root);
    const before = fs.statSync(path.join(root, 'src/cli/scale.ts'));
    fs.renameSync(path.join(root, 'src/cli/scale.ts'), path.join(root, 'src/cli/scaling.ts'));
    fs.utimesSync(path.join(root, 'src/cli/scaling.ts'), before.atime, before.mtime);
    expect(compiledEntry(root)).toBeNull();
    fs.renameSync(path.join(root, 'src/cli/scaling.ts'), path.join(root, 'src/cli/scale.ts'));
    expect(compiledEntry(root)).not.toBeNull();
    fs.writeFileSync(path.join(root, 'src/cli/extra.ts'), 'export {};\n');
    expect(compiledEntry(root)).toBeNull();
    // A rebuild starts from nothing: what a since-deleted source compiled to is gone.
    await buildCompiled(root);
    expect(fs.existsSync(path.join(root, '.compiled/cli/extra.js'))).toBe(true);
    fs.rmSync(path.join(root, 'src/cli/extra.ts'));
    await buildCompiled(root);
    expect(fs.existsSync(path.join(root, '.compiled/cli/extra.js'))).toBe(false);
  });

  it('takes no build whose entry is missing, and no tsc dist/ beside it', async () => {
    const root = miniCheckout();
    await buildCompiled(root);
    fs.renameSync(path.join(root, '.compiled'), path.join(root, 'dist'));
    expect(compiledEntry(root)).toBeNull();
    await buildCompiled(root);
    fs.rmSync(path.join(root, '.compiled/cli/main.js'));
    expect(compiledEntry(root)).toBeNull();
  });

  it("is current for this checkout once the suite's global setup has run, so the tests' children start compiled", () => {
    expect(compiledEntry()).toMatch(/\/\.compiled\/cli\/main\.js$/);
  });
});
