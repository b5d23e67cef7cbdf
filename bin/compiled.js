/**
 * The CLI compiled to JavaScript in .compiled/, and whether it is current. Starting from compiled code skips the
 * TypeScript loader, whose hooks see every module the CLI imports: a `corolla serve` start imported in 1.8–2.6 s
 * compiled against 3.9–5.0 s through tsx on a 2-vCPU VM. A digest of src/ as it was built is kept beside it; a start
 * uses it only when src/ still has that digest, so an edited checkout never runs stale code.
 *
 * `node bin/compiled.js` builds it (esbuild, as tsx itself transpiles: types stripped, not checked); the test suite
 * does this before it starts any child. It is its own folder, not the package's dist/ (`npm run build`, tsc), so
 * that a tsc build rewriting dist/ never races a process starting from it. It sits beside src/, at the same depth,
 * so the paths the code resolves from its own location (models/, migrations/, package.json) hold there too.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** This checkout: src/ and the compiled folder are beside bin/. */
const ROOT = path.resolve(import.meta.dirname, '..');
const OUT = '.compiled';
const stampOf = (root) => path.join(root, OUT, '.source-digest');

/** Every file under src/, relative and sorted. */
function sourceFiles(src) {
  return fs
    .readdirSync(src, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(src, path.join(entry.parentPath, entry.name)))
    .sort();
}

/** A digest of src/'s file names and contents (content, not mtimes: checkouts and package tarballs rewrite those). */
function sourceDigest(root, files = sourceFiles(path.join(root, 'src'))) {
  const hash = createHash('sha256');
  for (const file of files) hash.update(file).update('\0').update(fs.readFileSync(path.join(root, 'src', file))).update('\0');
  return hash.digest('hex');
}

const entryOf = (root) => path.join(root, OUT, 'cli', 'main.js');

/** Whether the compiled folder is whole and was built from src/ as it is now (`digest`, computed only if needed). */
function isCurrent(root, digest = () => sourceDigest(root)) {
  let stamp;
  try {
    stamp = fs.readFileSync(stampOf(root), 'utf8').trim();
  } catch {
    return false;
  }
  return fs.existsSync(entryOf(root)) && stamp === digest();
}

/** The compiled CLI's entry (a file URL), if it was built from src/ as it is now; else null. */
export function compiledEntry(root = ROOT) {
  return isCurrent(root) ? pathToFileURL(entryOf(root)).href : null;
}

/**
 * Builds the compiled folder afresh from src/ unless it is current: each .ts file transpiled on its own, as tsx
 * would at run time, and the other files (JSON artifacts, the gateway's pages) copied. Returns whether it built.
 */
export async function buildCompiled(root = ROOT) {
  const files = sourceFiles(path.join(root, 'src'));
  const digest = sourceDigest(root, files);
  if (isCurrent(root, () => digest)) return false;
  const { transform } = await import('esbuild');
  // Emptied first, so nothing compiled from a file since deleted stays; a start meanwhile finds no digest.
  fs.rmSync(path.join(root, OUT), { recursive: true, force: true });
  await Promise.all(
    files.map(async (file) => {
      const from = path.join(root, 'src', file);
      const isTs = file.endsWith('.ts');
      const to = path.join(root, OUT, isTs ? file.replace(/\.ts$/, '.js') : file);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      if (!isTs) return fs.copyFileSync(from, to);
      const { code } = await transform(fs.readFileSync(from, 'utf8'), { loader: 'ts', format: 'esm', platform: 'node', target: 'node20.20', sourcefile: from });
      fs.writeFileSync(to, code);
    }),
  );
  fs.writeFileSync(stampOf(root), digest + '\n');
  return true;
}

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  const started = performance.now();
  const built = await buildCompiled();
  process.stderr.write(built ? `compiled src/ into ${OUT}/ in ${Math.round(performance.now() - started)} ms\n` : `${OUT}/ is current with src/\n`);
}
