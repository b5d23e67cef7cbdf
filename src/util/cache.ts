import os from 'node:os';
import path from 'node:path';

/** ~/.cache/corolla: where downloads, fingerprints and database templates are kept unless a cache root is given. */
export function defaultCacheRoot(): string {
  return path.join(os.homedir(), '.cache', 'corolla');
}
