import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: bin/ is plain JavaScript, without declarations.
import { compiledEntry } from '../../bin/compiled.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A load hook that names every module on stderr, one `loaded <url>` line each. */
const HOOK = `export async function load(url, context, next) { process.stderr.write('loaded ' + url + '\\n'); return next(url, context); }`;

/** The packages (by folder under node_modules) that importing `module` from the compiled CLI loads, with counts. */
function packagesLoadedBy(module: string): Map<string, number> {
  const script = `import { register } from 'node:module';
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});
await import(${JSON.stringify(new URL(module, compiledEntry(ROOT)).href)});`;
  const { status, stderr } = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(status, stderr.slice(-2000)).toBe(0);
  const packages = new Map<string, number>();
  for (const line of stderr.split('\n')) {
    const match = /^loaded .*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(line);
    if (match) packages.set(match[1]!, (packages.get(match[1]!) ?? 0) + 1);
  }
  return packages;
}

describe("what a command's start imports", () => {
  // viem's clients and utilities take about a second to import on a 2-core machine; every server, client and test
  // process would pay it at start. Chain features load them when their flags ask for them.
  it('serve: libp2p and onnxruntime, and nothing of viem until a chain flag is given', () => {
    expect(compiledEntry(ROOT)).not.toBeNull(); // the global setup built it
    const packages = packagesLoadedBy('./serve.js');
    expect(packages.get('libp2p')).toBeGreaterThan(0);
    expect(packages.get('onnxruntime-node')).toBeGreaterThan(0);
    expect([...packages.keys()].filter((name) => name === 'viem' || name === 'ox' || name === 'abitype')).toEqual([]);
  });

  it('generate: no viem either', () => {
    const packages = packagesLoadedBy('./generate.js');
    expect(packages.get('libp2p')).toBeGreaterThan(0);
    expect(packages.has('viem')).toBe(false);
  });
});
