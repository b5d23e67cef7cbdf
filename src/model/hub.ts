/**
 * Downloads models from the Hugging Face Hub (or any server with its URL layout, e.g. a mirror named by
 * HF_ENDPOINT) into a local cache, and returns the local path to open.
 *
 * Spec syntax (an optional "hf:" prefix is accepted and ignored):
 *   owner/name                         a safetensors repo: config.json, tokenizer files, weights (sharded or not)
 *   owner/name@revision                the same at a branch, tag or commit (default "main")
 *   owner/name:path/in/repo.gguf       one GGUF file from a repo
 *   owner/name@revision:file.gguf      both
 *
 * Files go to `{cache}/hub/{owner}/{name}/{revision}/`, where {cache} is $COROLLA_CACHE or ~/.cache/corolla.
 * Each file is streamed to a `.partial` file and renamed when complete, so an interrupted download never leaves
 * a truncated file under the real name. A finished repo download writes a manifest, after which opening the same
 * spec makes no request at all (a revision like "main" is therefore pinned to what was first downloaded).
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { defaultCacheRoot } from '../util/cache.js';
import { progressTask, type ProgressEvent } from '../util/progress.js';
import { CorruptModelError, HubDownloadError, ModelNotFoundError } from './errors.js';

export interface HubSpec {
  /** "owner/name" */
  readonly repo: string;
  readonly revision: string;
  /** A single file to fetch (a GGUF); undefined for a safetensors repo. */
  readonly file?: string;
}

/** Progress of one file's download. */
export interface DownloadProgressEvent extends ProgressEvent {
  readonly file: string;
}

/** The public Hub, used when no endpoint is given. */
export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export interface HubOptions {
  /** Default: DEFAULT_HUB_ENDPOINT (the CLI passes $HF_ENDPOINT). */
  readonly endpoint?: string;
  /** Sent as a bearer token (the CLI passes $HF_TOKEN or $HUGGING_FACE_HUB_TOKEN). */
  readonly token?: string;
  /** Root of the cache; default ~/.cache/corolla (the CLI passes $COROLLA_CACHE). Files go under {root}/hub/. */
  readonly cacheRoot?: string;
  readonly onProgress?: (event: DownloadProgressEvent) => void;
  readonly signal?: AbortSignal;
  /** Retries after a network error (not after an HTTP error status); default 2. */
  readonly retries?: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const MANIFEST = '.corolla-complete.json';
/** Optional repo files: fetched when present, remembered as absent otherwise. */
const OPTIONAL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'chat_template.jinja'];

/** Parses a hub spec; throws ModelNotFoundError when it cannot be one. */
export function parseHubSpec(spec: string): HubSpec {
  let rest = spec.startsWith('hf:') ? spec.slice(3) : spec;
  let file: string | undefined;
  const colon = rest.indexOf(':');
  if (colon >= 0) {
    file = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  let revision = 'main';
  const at = rest.indexOf('@');
  if (at >= 0) {
    revision = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const parts = rest.split('/');
  const valid =
    parts.length === 2 &&
    parts.every((p) => NAME.test(p) && !p.includes('..')) &&
    revision.length > 0 &&
    !revision.split('/').some((p) => p === '' || p === '.' || p === '..') &&
    (file === undefined || (file.length > 0 && !file.split('/').some((p) => p === '' || p === '.' || p === '..')));
  if (!valid) throw new ModelNotFoundError(`"${spec}" is neither a local path nor a Hub spec (owner/name[@revision][:file.gguf])`);
  return { repo: rest, revision, ...(file !== undefined ? { file } : {}) };
}

/** True when `spec` reads as a Hub spec (it does not say whether the repo exists). */
export function isHubSpec(spec: string): boolean {
  try {
    parseHubSpec(spec);
    return true;
  } catch {
    return false;
  }
}

/** The local directory of one repo revision. */
export function hubCacheDir(spec: HubSpec, cacheRoot = defaultCacheRoot()): string {
  const [owner, name] = spec.repo.split('/') as [string, string];
  return nodePath.join(cacheRoot, 'hub', owner, name, encodeURIComponent(spec.revision));
}

/**
 * Makes a Hub model available locally and returns its path: the repo directory (for a safetensors repo) or the
 * GGUF file. Files already in the cache are not fetched again.
 */
export async function downloadFromHub(specOrString: string | HubSpec, options: HubOptions = {}): Promise<string> {
  const spec = typeof specOrString === 'string' ? parseHubSpec(specOrString) : specOrString;
  const dir = hubCacheDir(spec, options.cacheRoot);
  const client = new HubClient(spec, dir, options);
  if (spec.file) {
    await client.fetchFile(spec.file, true);
    return nodePath.join(dir, ...spec.file.split('/'));
  }

  const manifestPath = nodePath.join(dir, MANIFEST);
  if (fs.existsSync(manifestPath)) {
    try {
      const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as { files?: string[] };
      if (Array.isArray(manifest.files) && manifest.files.every((f) => fs.existsSync(nodePath.join(dir, f)))) return dir;
    } catch {
      // A damaged manifest only costs a re-check of each file.
    }
  }

  const files: string[] = [];
  const absent: string[] = [];
  await client.fetchFile('config.json', true);
  files.push('config.json');
  for (const file of OPTIONAL_FILES) (await client.fetchFile(file, false) ? files : absent).push(file);

  if (await client.fetchFile('model.safetensors', false)) files.push('model.safetensors');
  else {
    if (!(await client.fetchFile('model.safetensors.index.json', false))) {
      throw new ModelNotFoundError(`safetensors weights in ${spec.repo}@${spec.revision} (neither model.safetensors nor model.safetensors.index.json)`);
    }
    files.push('model.safetensors.index.json');
    for (const shard of shardFiles(nodePath.join(dir, 'model.safetensors.index.json'))) {
      await client.fetchFile(shard, true);
      files.push(shard);
    }
  }
  fs.writeFileSync(manifestPath, JSON.stringify({ repo: spec.repo, revision: spec.revision, files, absent }, null, 2));
  return dir;
}

function shardFiles(indexPath: string): string[] {
  let index: { weight_map?: Record<string, unknown> };
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as typeof index;
  } catch (error) {
    throw new CorruptModelError(indexPath, 'invalid JSON', { cause: error });
  }
  const names = new Set<string>();
  for (const file of Object.values(index.weight_map ?? {})) {
    if (typeof file !== 'string' || !NAME.test(file) || file.includes('..')) {
      throw new CorruptModelError(indexPath, `bad shard file name ${JSON.stringify(file)}`);
    }
    names.add(file);
  }
  if (names.size === 0) throw new CorruptModelError(indexPath, 'weight_map names no shards');
  return [...names].sort();
}

class HubClient {
  private readonly endpoint: string;
  private readonly token?: string;

  constructor(
    private readonly spec: HubSpec,
    private readonly dir: string,
    private readonly options: HubOptions,
  ) {
    this.endpoint = (options.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, '');
    if (options.token) this.token = options.token;
  }

  private url(file: string): string {
    const path = file.split('/').map(encodeURIComponent).join('/');
    return `${this.endpoint}/${this.spec.repo}/resolve/${encodeURIComponent(this.spec.revision)}/${path}`;
  }

  /**
   * Ensures `file` is in the cache. Returns false when it is optional and the Hub has no such file; throws
   * ModelNotFoundError when a required file is missing.
   */
  async fetchFile(file: string, required: boolean): Promise<boolean> {
    const dest = nodePath.join(this.dir, ...file.split('/'));
    if (fs.existsSync(dest)) return true;
    const what = `${this.spec.repo}/${file}@${this.spec.revision}`;
    const headers: Record<string, string> = { 'user-agent': 'corolla/0.1' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;

    let response: Response | undefined;
    const attempts = 1 + (this.options.retries ?? 2);
    for (let attempt = 1; !response; attempt++) {
      try {
        response = await fetch(this.url(file), { headers, redirect: 'follow', ...(this.options.signal ? { signal: this.options.signal } : {}) });
      } catch (error) {
        // A kept-alive socket the server already closed fails with ECONNRESET: retrying on a fresh one is the fix.
        if (attempt >= attempts || this.options.signal?.aborted) {
          throw new HubDownloadError(`could not reach ${this.endpoint} to download ${what}`, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * 4 ** (attempt - 1)));
      }
    }
    if (response.status === 404 || response.status === 401) {
      await response.body?.cancel();
      if (!required) return false;
      // The Hub answers 401 for a repo that does not exist as well as for a private one.
      const hint = response.status === 401 ? (this.token ? ' (or your HF_TOKEN cannot read it)' : ' (or it is private: set HF_TOKEN)') : '';
      throw new ModelNotFoundError(`${what} on ${this.endpoint}${hint}`);
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      const hint = response.status === 403 ? ' (a gated model: accept its license on the Hub and set HF_TOKEN)' : '';
      throw new HubDownloadError(`downloading ${what} failed: HTTP ${response.status} ${response.statusText}${hint}`);
    }

    fs.mkdirSync(nodePath.dirname(dest), { recursive: true });
    const partial = `${dest}.${process.pid}.partial`;
    const lengthHeader = response.headers.get('content-length');
    const encoded = response.headers.get('content-encoding');
    const total = lengthHeader && !encoded ? Number(lengthHeader) : undefined;
    const onProgress = this.options.onProgress;
    const progress = progressTask(onProgress && ((event: ProgressEvent) => onProgress({ ...event, file })), `downloading ${what}`);
    let done = 0;
    const counter = new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        done += chunk.length;
        progress.update(done, total);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), counter, fs.createWriteStream(partial));
      if (total !== undefined && done !== total) throw new Error(`received ${done} of ${total} bytes`);
      fs.renameSync(partial, dest);
    } catch (error) {
      fs.rmSync(partial, { force: true });
      throw new HubDownloadError(`downloading ${what} was interrupted`, { cause: error });
    }
    progress.done();
    return true;
  }
}
