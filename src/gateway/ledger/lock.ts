/**
 * A lock file for an embedded ledger's data directory. PGlite does not lock its directory, and two instances on one
 * directory corrupt it; so the first opener writes its pid in `<dir>.lock` (beside it: initdb wants an empty
 * directory), and a later one fails while that process lives.
 */
import fs from 'node:fs';
import { LedgerLockedError } from './errors.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, but someone else's
  }
}

/** Takes the lock on `dir` (taking over one left by a dead process); returns the function that releases it. */
export function lockDataDir(dir: string): () => void {
  const file = `${dir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const pid = Number(fs.readFileSync(file, 'utf8'));
    if (attempt > 0 || (Number.isInteger(pid) && pid > 0 && isAlive(pid))) throw new LedgerLockedError(dir, pid, file);
    fs.rmSync(file, { force: true }); // left by a process that died
  }
}
