/**
 * `bin/corolla.js` in child processes: one command run to its end (`runCorolla`), or a long-running one (`serve`,
 * `dht`) read up to its first stdout line (`spawnCorolla`). Each child leads its own process group, and is killed
 * with the whole group, so nothing it started outlives the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { COROLLA_BIN } from '../../src/cli/processes.js';
import { killProcessGroup } from '../../src/util/processes.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

const running = new Set<ChildProcess>();

/** Kills every child still running (each with its process group); for afterAll. */
export function killCorollaProcesses(): void {
  for (const child of running) killProcessGroup(child);
}
process.once('exit', killCorollaProcesses);

function start(args: string[], env: NodeJS.ProcessEnv | undefined, stdin: 'pipe' | 'ignore'): ChildProcess {
  const child = spawn(process.execPath, [COROLLA_BIN, ...args], { cwd: ROOT, detached: true, stdio: [stdin, 'pipe', 'pipe'], env: { ...process.env, ...env } });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

export interface CorollaResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one command to its end (progress quiet unless `env` says otherwise), with `stdin` as its input. */
export function runCorolla(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CorollaResult> {
  return new Promise((resolve, reject) => {
    const child = start(args, { COROLLA_QUIET: '1', ...options.env }, 'pipe');
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => killProcessGroup(child), options.timeoutMs ?? 60_000);
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(options.stdin ?? '');
  });
}

export interface CorollaProcess {
  readonly child: ChildProcess;
  /** Its stdout so far, line by line. */
  stdout(): string;
  stderr(): string;
  /** Its first stdout line; rejects if it exits first or prints nothing within the timeout (then it is killed). */
  readonly firstLine: Promise<string>;
}

/** Starts a long-running command; stop it with `child.kill(...)` or `killCorollaProcesses()`. */
export function spawnCorolla(args: string[], options: { firstLineTimeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): CorollaProcess {
  const child = start(args, options.env, 'ignore');
  const timeoutMs = options.firstLineTimeoutMs ?? 45_000;
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout! });
  const firstLine = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      killProcessGroup(child);
      reject(new Error(`no first line within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    lines.on('line', (line) => {
      stdout += line + '\n';
      clearTimeout(timer);
      resolve(line);
    });
    lines.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`stdout closed before the first line; stderr:\n${stderr}`));
    });
  });
  firstLine.catch(() => {});
  return { child, stdout: () => stdout, stderr: () => stderr, firstLine };
}
