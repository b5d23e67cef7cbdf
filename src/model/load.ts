/**
 * One entry point for every model format, and content fingerprints of weights.
 *
 * openModel(spec) accepts:
 *   path/to/model.gguf            a GGUF file (recognised by its magic, whatever the extension)
 *   path/to/model.bin             a llama2.c checkpoint (tokenizer from options.tokenizerPath, or found beside it)
 *   path/to/dir                   a Hugging Face directory (config.json + safetensors)
 *   owner/name[@rev][:file.gguf]  a Hugging Face Hub repo (see hub.ts), when no such local path exists
 *   hf:owner/name...              always the Hub
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { progressTask, type OnProgress } from '../util/progress.js';
import { CorruptModelError, ModelNotFoundError } from './errors.js';
import { GGUF_MAGIC } from './gguf.js';
import { openGgufSource } from './gguf-source.js';
import { openHfSource } from './hf-source.js';
import { defaultCacheRoot } from '../util/cache.js';
import { downloadFromHub, isHubSpec, type DownloadProgressEvent, type HubOptions } from './hub.js';
import { openLlama2cSource } from './llama2c-source.js';
import type { ModelSource } from './types.js';

/** What openModel returns: a ModelSource that also names the weight files it reads (for fingerprints). */
export type LoadedModelSource = ModelSource & { readonly files: readonly string[] };

export interface OpenModelOptions {
  /** llama2.c only: the tokenizer.bin to use. */
  readonly tokenizerPath?: string;
  /** Download progress. */
  readonly onProgress?: (event: DownloadProgressEvent) => void;
  /** Hub settings (endpoint, token, cache root). */
  readonly hub?: Omit<HubOptions, 'onProgress'>;
}

export async function openModel(spec: string, options: OpenModelOptions = {}): Promise<LoadedModelSource> {
  let path = spec;
  if (spec.startsWith('hf:') || (!fs.existsSync(spec) && looksRemote(spec))) {
    path = await downloadFromHub(spec, { ...options.hub, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  }
  return openLocalModel(path, options);
}

/** A repo id has one '/', and is not spelled like a relative or absolute path. */
function looksRemote(spec: string): boolean {
  return !spec.startsWith('.') && !spec.startsWith('/') && !spec.startsWith('~') && spec.includes('/') && isHubSpec(spec);
}

/** Opens a local file or directory, choosing the format from its content. */
export function openLocalModel(path: string, options: { tokenizerPath?: string } = {}): LoadedModelSource {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch (error) {
    throw new ModelNotFoundError(path, { cause: error });
  }
  if (stat.isDirectory()) return openHfSource(path);
  if (!stat.isFile()) throw new CorruptModelError(path, 'not a regular file or directory');
  if (readMagic(path) === GGUF_MAGIC) return openGgufSource(path);
  const ext = nodePath.extname(path).toLowerCase();
  if (ext === '.gguf') return openGgufSource(path); // reports the bad magic
  if (ext === '.bin') return openLlama2cSource(path, options);
  if (ext === '.safetensors') return openHfSource(nodePath.dirname(path));
  throw new CorruptModelError(path, 'unrecognised model format (expected a .gguf file, a llama2.c .bin, or a Hugging Face directory)');
}

function readMagic(path: string): number | undefined {
  const fd = fs.openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    return fs.readSync(fd, b, 0, 4, 0) === 4 ? b.readUInt32LE(0) : undefined;
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Fingerprints

export interface FingerprintOptions {
  /** Root of the cache (default ~/.cache/corolla); fingerprints are cached in {root}/fingerprints.json. */
  readonly cacheRoot?: string;
  readonly onProgress?: OnProgress;
}

/** Where fingerprints are cached: {cache root}/fingerprints.json. */
export function fingerprintCachePath(cacheRoot = defaultCacheRoot()): string {
  return nodePath.join(cacheRoot, 'fingerprints.json');
}

const PROGRESS_THRESHOLD = 64 * 1024 * 1024;

/**
 * SHA-256 (hex) of a model's weight bytes: the weight files' contents in order (a single-file model's fingerprint
 * equals `sha256sum` of the file). Peers compare fingerprints to be sure they serve the very same weights.
 * Results are cached by path + size + mtime, so a multi-GB file is hashed once.
 */
export async function modelFingerprint(source: ModelSource | string, options: FingerprintOptions = {}): Promise<string> {
  const files = weightFiles(source).map((f) => nodePath.resolve(f));
  const stats = files.map((f) => fs.statSync(f));
  const key = files.map((f, i) => `${f}|${stats[i]!.size}|${stats[i]!.mtimeMs}`).join('\n');
  const cachePath = fingerprintCachePath(options.cacheRoot);
  const cache = readFingerprintCache(cachePath);
  const hit = cache[key];
  if (typeof hit === 'string') return hit;

  const total = stats.reduce((a, s) => a + s.size, 0);
  const hash = createHash('sha256');
  const progress = progressTask(total >= PROGRESS_THRESHOLD ? options.onProgress : undefined, `fingerprinting ${nodePath.basename(files[0]!)}`);
  let done = 0;
  for (const file of files) {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) {
      hash.update(chunk as Buffer);
      done += (chunk as Buffer).length;
      progress.update(done, total);
    }
  }
  progress.done();
  const digest = hash.digest('hex');
  writeFingerprintCache(cachePath, key, digest);
  return digest;
}

function weightFiles(source: ModelSource | string): string[] {
  if (typeof source !== 'string') {
    const files = (source as Partial<LoadedModelSource>).files;
    return files && files.length > 0 ? [...files] : [source.location];
  }
  const stat = fs.statSync(source);
  if (!stat.isDirectory()) return [source];
  const names = fs.readdirSync(source).filter((n) => n.endsWith('.safetensors')).sort();
  if (names.length === 0) throw new ModelNotFoundError(`safetensors weights in ${source}`);
  return names.map((n) => nodePath.join(source, n));
}

function readFingerprintCache(path: string): Record<string, unknown> {
  try {
    const value = JSON.parse(fs.readFileSync(path, 'utf8')) as unknown;
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function writeFingerprintCache(path: string, key: string, digest: string): void {
  try {
    fs.mkdirSync(nodePath.dirname(path), { recursive: true });
    // Re-read just before writing so concurrent processes lose as little as possible; rename is atomic.
    const cache = readFingerprintCache(path);
    cache[key] = digest;
    const tmp = `${path}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(cache, null, 1));
    fs.renameSync(tmp, path);
  } catch {
    // The cache is an optimisation; a read-only home must not break loading.
  }
}
