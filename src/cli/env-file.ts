/**
 * `.env` files: the CLI reads `./.env` (or the file `--dotenv` names) before any command parses its flags, so the
 * COROLLA_* variables (.env.example lists them) can live there, as the seed workers are configured. Precedence:
 * flags, then the process environment, then the file: a variable already set is never overwritten.
 * (The flag is not called `--env-file`: Node 20 scans script arguments for that name and exits 9 on a missing file
 * before this code runs, nodejs/node#54232.)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { UsageError } from './errors.js';

export const DEFAULT_ENV_FILE = '.env';
const ENV_FILE_FLAG = '--dotenv';

/** `argv` without `--dotenv FILE` / `--dotenv=FILE`, and the file it named. */
export function takeEnvFileFlag(argv: readonly string[]): { argv: string[]; envFile?: string } {
  const rest: string[] = [];
  let envFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === ENV_FILE_FLAG) {
      envFile = argv[++i];
      if (envFile === undefined) throw new UsageError(`${ENV_FILE_FLAG} needs a file`);
    } else if (arg.startsWith(`${ENV_FILE_FLAG}=`)) {
      envFile = arg.slice(ENV_FILE_FLAG.length + 1);
    } else {
      rest.push(arg);
    }
  }
  return { argv: rest, ...(envFile !== undefined ? { envFile } : {}) };
}

/**
 * Sets in `env` each variable of the env file that `env` lacks: the file `--env-file` named (which must exist), or
 * `.env` in `cwd` when there is one. Returns the names it set (never their values: a key may be among them).
 */
export function loadEnvFile(env: NodeJS.ProcessEnv, options: { envFile?: string; cwd?: string } = {}): string[] {
  const file = path.resolve(options.cwd ?? process.cwd(), options.envFile ?? DEFAULT_ENV_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (options.envFile === undefined && code === 'ENOENT') return [];
    throw new UsageError(`cannot read the env file ${file}: ${code ?? (error as Error).message}`);
  }
  const set: string[] = [];
  for (const [name, value] of Object.entries(parseEnv(text))) {
    // `NAME=` (as in .env.example) leaves NAME unset, so a copied template changes no default
    if (value === undefined || value === '' || env[name] !== undefined) continue;
    env[name] = value;
    set.push(name);
  }
  return set;
}
