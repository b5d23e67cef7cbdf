/**
 * House rule: imports only run down the layers of docs/ARCHITECTURE.md, and folders of one layer never import each
 * other (client and server are peers; so are wire and model, engine and swarm). This reads every import in src/
 * (static, dynamic and `export … from`) and fails naming each one that runs up or sideways.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Bottom to top. A module may import its own folder and any folder on a lower layer. Keep in step with docs/ARCHITECTURE.md. */
export const LAYERS: readonly (readonly string[])[] = [
  ['util', 'errors.ts', 'version.ts'],
  ['wire', 'model', 'chain'],
  ['engine', 'swarm'],
  ['inference'],
  ['client', 'server'],
  ['gateway', 'oracle'],
  ['cli'],
  ['index.ts', 'types.ts'],
];

function unitOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel[0]!;
}

function layerOf(unit: string): number {
  const layer = LAYERS.findIndex((units) => units.includes(unit));
  if (layer < 0) throw new Error(`src/${unit} is on no layer: add it to LAYERS and docs/ARCHITECTURE.md`);
  return layer;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.(ts|js)$/.test(entry.name) ? [full] : [];
  });
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

/** Every relative import in src/ as [importer, imported] paths. */
export function relativeImports(): Array<[string, string]> {
  const edges: Array<[string, string]> = [];
  for (const file of sourceFiles(SRC)) {
    const text = fs.readFileSync(file, 'utf8');
    // sources import each other as .js (NodeNext); the files are .ts
    for (const match of text.matchAll(IMPORT)) edges.push([file, path.resolve(path.dirname(file), match[1]!).replace(/\.js$/, '.ts')]);
  }
  return edges;
}

/** The imports that break the house rule, as "src/a/x.ts → src/b/y.ts (a is layer i, b is layer j)". */
export function layerViolations(edges: Array<[string, string]>): string[] {
  const out: string[] = [];
  for (const [from, to] of edges) {
    if (!to.startsWith(SRC + path.sep)) {
      if (!to.endsWith('package.json')) out.push(`${path.relative(SRC, from)} imports ${to}, outside src/`);
      continue;
    }
    const a = unitOf(from);
    const b = unitOf(to);
    if (a === b) continue;
    const la = layerOf(a);
    const lb = layerOf(b);
    // the bottom layer (util and the root errors/version modules) is one foundation
    if (lb > la || (lb === la && la !== 0)) out.push(`src/${path.relative(SRC, from)} → src/${path.relative(SRC, to)} (${a} is on layer ${la}, ${b} on layer ${lb})`);
  }
  return out;
}

describe('the house', () => {
  it('finds imports (the scan itself works)', () => {
    const edges = relativeImports();
    expect(edges.length).toBeGreaterThan(100);
    // a known downward import is found
    expect(edges.some(([from, to]) => unitOf(from) === 'cli' && unitOf(to) === 'model')).toBe(true);
  });

  it('flags an import that runs up or sideways', () => {
    const at = (p: string) => path.join(SRC, p);
    expect(layerViolations([[at('client/x.ts'), at('cli/generate.ts')]])).toHaveLength(1);
    expect(layerViolations([[at('client/x.ts'), at('server/y.ts')]])).toHaveLength(1);
    expect(layerViolations([[at('server/y.ts'), at('inference/generate.ts')]])).toHaveLength(0);
    expect(layerViolations([[at('wire/a.ts'), at('wire/b.ts')]])).toHaveLength(0);
  });

  it('has no import that runs up the layers or across one layer', () => {
    expect(layerViolations(relativeImports())).toEqual([]);
  });

  it('keeps library code off stdout, stderr and the environment (the CLI owns them)', () => {
    const offenders = sourceFiles(SRC)
      .filter((file) => unitOf(file) !== 'cli')
      .filter((file) => /process\.(stdout|stderr|env)\b/.test(fs.readFileSync(file, 'utf8')))
      .map((file) => path.relative(SRC, file));
    expect(offenders).toEqual([]);
  });
});
