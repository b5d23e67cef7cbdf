/**
 * Option parsing shared by the commands: typed numbers with clear errors, and the sampling flags that
 * `generate`, `chat` and swarm generation all accept.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DEFAULT_SAMPLING } from '../inference/defaults.js';
import { DEFAULT_PENALTY_LAST_N, type SamplingOptions } from '../inference/sampling/index.js';
import type { KvCacheType } from '../engine/kv-cache.js';
import { UsageError } from './errors.js';

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    const parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
    if ((parsed.values as { help?: boolean }).help) {
      process.stdout.write(usage + '\n');
      process.exit(0);
    }
    return parsed.values as { [K in keyof T]?: T[K]['type'] extends 'boolean' ? boolean : string };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${(error as Error).message}\n\n${usage}`);
  }
}

export function numberOption(value: string | undefined, name: string, options: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || (options.integer && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${options.integer ? 'an integer' : 'a number'}, got "${value}"`);
  if (options.min !== undefined && n < options.min) throw new UsageError(`--${name} must be at least ${options.min}, got ${n}`);
  if (options.max !== undefined && n > options.max) throw new UsageError(`--${name} must be at most ${options.max}, got ${n}`);
  return n;
}

export const samplingFlags = {
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  'min-p': { type: 'string' },
  'repeat-penalty': { type: 'string' },
  'frequency-penalty': { type: 'string' },
  'presence-penalty': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
} as const;

export const samplingUsage = `sampling:
  --temperature T        0 = greedy (default ${DEFAULT_SAMPLING.temperature})
  --top-p P              nucleus sampling mass (default ${DEFAULT_SAMPLING.topP})
  --top-k K              keep the K most likely tokens (default ${DEFAULT_SAMPLING.topK}; 0 = off)
  --min-p P              drop tokens below P × the top probability (default ${DEFAULT_SAMPLING.minP})
  --repeat-penalty R     repetition penalty over the last ${DEFAULT_PENALTY_LAST_N} tokens (default 1 = off)
  --frequency-penalty F, --presence-penalty F
  --seed S               same seed, same text
  --stop TEXT            stop before TEXT (repeatable)`;

export function samplingFrom(values: Record<string, unknown>): SamplingOptions & { stop?: string[] } {
  const v = values as Record<string, string | undefined>;
  return {
    temperature: numberOption(v.temperature, 'temperature', { min: 0 }) ?? DEFAULT_SAMPLING.temperature,
    topP: numberOption(v['top-p'], 'top-p', { min: 0, max: 1 }) ?? DEFAULT_SAMPLING.topP,
    topK: numberOption(v['top-k'], 'top-k', { integer: true, min: 0 }) ?? DEFAULT_SAMPLING.topK,
    minP: numberOption(v['min-p'], 'min-p', { min: 0, max: 1 }) ?? DEFAULT_SAMPLING.minP,
    repetitionPenalty: numberOption(v['repeat-penalty'], 'repeat-penalty', { min: 0 }),
    frequencyPenalty: numberOption(v['frequency-penalty'], 'frequency-penalty'),
    presencePenalty: numberOption(v['presence-penalty'], 'presence-penalty'),
    seed: numberOption(v.seed, 'seed', { integer: true }),
    stop: values.stop as string[] | undefined,
  };
}

/** A flag that takes one of a few words; undefined when absent. */
export function choiceOption<T extends string>(value: string | undefined, name: string, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`--${name} must be ${choices.join(' or ')}, got "${value}"`);
  return value as T;
}

/** --device: the onnxruntime execution provider. */
export function deviceOption(value: string | undefined): 'cpu' | 'cuda' {
  return choiceOption(value, 'device', ['cpu', 'cuda'] as const) ?? 'cpu';
}

/** --kv-cache: the KV cache's element type. */
export function kvCacheOption(value: string | undefined): KvCacheType | undefined {
  return choiceOption(value, 'kv-cache', ['f32', 'f16'] as const);
}
