/**
 * `npm run build` emits dist/, and the package's exports map resolves there: `corolla`, `corolla/client`,
 * `corolla/server` load in plain Node (no TypeScript loader), and `corolla/types` carries no runtime code at all.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string | { types: string; default: string }> };

describe('the package build', () => {
  it('emits every entry of the exports map, loadable by plain Node through the package name', () => {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      expect(fs.existsSync(path.join(ROOT, target.default)), `${subpath} → ${target.default}`).toBe(true);
      expect(fs.existsSync(path.join(ROOT, target.types)), `${subpath} → ${target.types}`).toBe(true);
    }
    const script = `
      const main = await import('corolla');
      const client = await import('corolla/client');
      const server = await import('corolla/server');
      const types = await import('corolla/types');
      console.log(JSON.stringify({
        main: [typeof main.LocalModel, typeof main.RemoteModel, typeof main.createBlockServer, typeof main.generateFrom, main.SOFTWARE_VERSION],
        client: typeof client.RemoteModel,
        server: typeof server.createBlockServer,
        types: Object.keys(types).length,
      }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').pop()!);
    expect(out).toEqual({
      main: ['function', 'function', 'function', 'function', JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version],
      client: 'function',
      server: 'function',
      types: 0,
    });
    // type-only: the emitted module imports nothing
    expect(fs.readFileSync(path.join(ROOT, 'dist/types.js'), 'utf8')).not.toMatch(/\bimport\b/);
    // A whole tsc build beside another test file: 57 s and then over 60 s on a slower 2-vCPU VM.
  }, 240_000);
});
