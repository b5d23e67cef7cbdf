/**
 * Starting and supervising Corolla processes: used by `corolla demo`, the multi-process tests and the swarm
 * benchmark. Each child runs bin/corolla.js; we wait for a line on its stdout that says it is ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { BlockRange } from '../util/blocks.js';
import { ChildProcessError } from './errors.js';

export const COROLLA_BIN = path.resolve(import.meta.dirname, '../../bin/corolla.js');

export interface CorollaProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** The first stdout line matching the ready pattern. */
  readonly readyLine: string;
  /** Everything written to stderr so far (for diagnostics). */
  stderr(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  kill(): void;
  readonly exited: Promise<number | null>;
}

export async function startCorolla(
  name: string,
  args: string[],
  options: { ready: RegExp; timeoutMs?: number; env?: NodeJS.ProcessEnv; onStderr?: (line: string) => void; onStdout?: (line: string) => void },
): Promise<CorollaProcess> {
  const child = spawn(process.execPath, [COROLLA_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stderr = '';
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr += line + '\n';
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    options.onStderr?.(line);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const readyLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new ChildProcessError(`${name} was not ready within ${options.timeoutMs ?? 60_000} ms\n${stderr.slice(-2000)}`));
    }, options.timeoutMs ?? 60_000);
    let ready = false;
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!ready && options.ready.test(line)) {
        ready = true;
        clearTimeout(timer);
        resolve(line);
      } else options.onStdout?.(line);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (!ready) reject(new ChildProcessError(`${name} exited with code ${code} before it was ready\n${stderr.slice(-2000)}`));
    });
  });
  return {
    name,
    child,
    readyLine,
    stderr: () => stderr,
    exited,
    kill: () => child.kill('SIGKILL'),
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Splits [0, n) into `parts` contiguous spans as evenly as possible. */
export function evenSpans(n: number, parts: number): BlockRange[] {
  return Array.from({ length: parts }, (_, i) => ({ start: Math.floor((i * n) / parts), end: Math.floor(((i + 1) * n) / parts) }));
}
