/**
 * The gateway's API keys, from a JSON file:
 *
 *   {"keys": [{"id": "alice", "key": "sk-…", "requestsPerMinute": 60, "tokensPerMinute": 100000},
 *             {"id": "bob", "sha256": "<hex of the key's SHA-256>", "admin": true}]}
 *
 * A key is given in the clear or as its SHA-256 (so the file need not hold secrets). Only the hashes are kept in
 * memory, and a bearer token is found by comparing its hash with every key's in constant time, so neither the
 * comparison's timing nor a log line (nothing here logs) gives a key away.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { formatIssue, intIn, strictObject, text, token, z } from '../../wire/schema.js';
import type { KeyLimits } from '../types.js';
import { ApiKeysFileError } from './errors.js';

/** An API key as the gateway knows it: who it is, its limits, and whether it may use admin routes. */
export interface ApiKey {
  readonly id: string;
  readonly limits: KeyLimits;
  readonly admin: boolean;
}

export interface ApiKeys {
  /** How many keys are configured. */
  readonly size: number;
  /** The key whose secret is `bearerToken`, if any. */
  find(bearerToken: string): ApiKey | undefined;
}

/** Shortest key accepted in the clear: 128 bits of base64/hex-ish text, so a configured key cannot be guessed. */
export const MIN_API_KEY_LENGTH = 16;
const MAX_API_KEY_LENGTH = 512;
const MAX_API_KEYS = 100_000;
/** Per-minute limits up to a billion: far past any real budget, still exact in Redis' integers. */
const MAX_PER_MINUTE = 1_000_000_000;

const entrySchema = strictObject(
  {
    id: text(1, 200, /^[\w.@:+-]+$/),
    key: text(MIN_API_KEY_LENGTH, MAX_API_KEY_LENGTH).optional(),
    sha256: token(/^[0-9a-fA-F]{64}$/, '64 hexadecimal digits (a SHA-256)').optional(),
    requestsPerMinute: intIn(1, MAX_PER_MINUTE).optional(),
    tokensPerMinute: intIn(1, MAX_PER_MINUTE).optional(),
    admin: z.boolean({ error: 'must be true or false' }).optional(),
  },
  'an object with "id" and "key" or "sha256"',
).refine((entry) => (entry.key === undefined) !== (entry.sha256 === undefined), { error: 'needs exactly one of "key" and "sha256"' });

const fileSchema = strictObject(
  { keys: z.array(entrySchema, { error: 'must be an array' }).min(1, { error: 'must list at least one key' }).max(MAX_API_KEYS) },
  'an object {"keys": [...]}',
);

interface StoredKey {
  readonly hash: Buffer;
  readonly key: ApiKey;
}

/** Reads and validates an API-keys file; throws ApiKeysFileError naming the file and the entry at fault. */
export async function loadApiKeys(path: string): Promise<ApiKeys> {
  let source: string;
  try {
    source = await readFile(path, 'utf8');
  } catch (error) {
    throw new ApiKeysFileError(path, `cannot read it: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(source);
  } catch (error) {
    throw new ApiKeysFileError(path, `not valid JSON: ${(error as Error).message}`);
  }
  return parseApiKeys(json, path);
}

/** Validates the parsed contents of an API-keys file (`file` names it in errors). */
export function parseApiKeys(json: unknown, file: string): ApiKeys {
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ApiKeysFileError(file, `${formatIssue(issue, withoutSecrets(json))}${entryName(json, issue.path)}`);
  }
  const stored: StoredKey[] = [];
  const indexById = new Map<string, number>();
  const indexByHash = new Map<string, number>();
  parsed.data.keys.forEach((entry, index) => {
    const hash = entry.key !== undefined ? sha256(entry.key) : Buffer.from(entry.sha256!, 'hex');
    const sameId = indexById.get(entry.id);
    if (sameId !== undefined) throw new ApiKeysFileError(file, `keys[${index}] repeats the id "${entry.id}" of keys[${sameId}]`);
    const sameKey = indexByHash.get(hash.toString('hex'));
    if (sameKey !== undefined) {
      throw new ApiKeysFileError(file, `keys[${index}] ("${entry.id}") has the same key as keys[${sameKey}] ("${parsed.data.keys[sameKey]!.id}")`);
    }
    indexById.set(entry.id, index);
    indexByHash.set(hash.toString('hex'), index);
    const limits: KeyLimits = { requestsPerMinute: entry.requestsPerMinute, tokensPerMinute: entry.tokensPerMinute };
    stored.push({ hash, key: { id: entry.id, limits, admin: entry.admin ?? false } });
  });
  return {
    size: stored.length,
    find(bearerToken) {
      const hash = sha256(bearerToken);
      let found: ApiKey | undefined;
      // every key is compared, found or not, so the time taken says nothing about which (or whether one) matched
      for (const candidate of stored) if (timingSafeEqual(candidate.hash, hash)) found = candidate.key;
      return found;
    },
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The file's contents with every "key" replaced, so an error about an entry never quotes a secret. */
function withoutSecrets(json: unknown): unknown {
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return json;
  return {
    ...(json as object),
    keys: keys.map((entry: unknown) =>
      typeof entry === 'object' && entry !== null && typeof (entry as { key?: unknown }).key === 'string'
        ? { ...entry, key: `(${(entry as { key: string }).key.length} characters, not shown)` }
        : entry,
    ),
  };
}

/** ` (id "alice")` when the issue lies in an entry that has a readable id, so the operator finds it by name too. */
function entryName(json: unknown, path: readonly PropertyKey[]): string {
  if (path[0] !== 'keys' || typeof path[1] !== 'number') return '';
  const id = ((json as { keys: unknown[] }).keys[path[1]] as { id?: unknown } | null)?.id;
  return typeof id === 'string' && path[2] !== 'id' ? ` (id ${JSON.stringify(id.slice(0, 200))})` : '';
}
