/**
 * The CLI compiled to JavaScript in dist/, and whether it is current. Starting from dist/ skips the TypeScript
 * loader, whose hooks see every module the CLI imports: a `corolla serve` start imported in 2.4–2.6 s from dist/
 * against 4.6–5.0 s through tsx on a 2-vCPU VM. A stamp in dist/ holds a digest of src/ as it was built; a start
 * uses dist/ only when src/ still has that digest, so an edited checkout never runs stale code.
 *
 * `node bin/compiled.js` builds dist/ fast (esbuild, as tsx itself transpiles: types stripped, not checked; the
 * test suite does this before it starts any child); `npm run build` compiles it with tsc and stamps it.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** This checkout: src/ and dist/ are beside bin/. */
const ROOT = path.resolve(import.meta.dirname, '..');
const stampOf = (root) => path.join(root, 'dist', '.source-digest');

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

function readStamp(root) {
  try {
    return fs.readFileSync(stampOf(root), 'utf8').trim();
  } catch {
    return null;
  }
}

/** The compiled CLI's entry (a file URL), if dist/ was built from src/ as it is now; else null. */
export function compiledEntry(root = ROOT) {
  const stamp = readStamp(root);
  const main = path.join(root, 'dist', 'cli', 'main.js');
  return stamp !== null && stamp === sourceDigest(root) && fs.existsSync(main) ? pathToFileURL(main).href : null;
}

/** Records that dist/ now holds src/ as it is (after a complete build). */
export function stampCompiled(root = ROOT) {
  fs.writeFileSync(stampOf(root), sourceDigest(root) + '\n');
}

/**
 * Builds dist/ from src/ unless it is current: each .ts file transpiled on its own, as tsx would at run time, and the
 * other files (JSON artifacts, the gateway's pages) copied. Returns whether it built.
 */
export async function buildCompiled(root = ROOT) {
  const files = sourceFiles(path.join(root, 'src'));
  const digest = sourceDigest(root, files);
  if (readStamp(root) === digest) return false;
  const { transform } = await import('esbuild');
  fs.rmSync(stampOf(root), { force: true });
  await Promise.all(
    files.map(async (file) => {
      const from = path.join(root, 'src', file);
      const isTs = file.endsWith('.ts') && !file.endsWith('.d.ts');
      const to = path.join(root, 'dist', isTs ? file.replace(/\.ts$/, '.js') : file);
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
  if (process.argv[2] === '--stamp') stampCompiled();
  else {
    const started = performance.now();
    const built = await buildCompiled();
    process.stderr.write(built ? `built dist/ from src/ in ${Math.round(performance.now() - started)} ms\n` : 'dist/ is current with src/\n');
  }
}
