/**
 * Who a request is: the API key its `Authorization: Bearer …` header names, or, when the gateway has no keys, an
 * anonymous client known by its address (rate limits then apply per address, unlimited by default).
 */
import { UnauthorizedError } from '../errors.js';
import type { KeyLimits, SharedState } from '../types.js';
import type { ApiKeys } from './api-keys.js';

export interface Caller {
  /** What rate limits count against: the key's id, or the client's address without keys. */
  readonly subject: string;
  /** The API key's id; null for an anonymous caller. */
  readonly keyId: string | null;
  readonly limits: KeyLimits;
  readonly admin: boolean;
}

export interface AuthenticateOptions {
  /** The configured keys; undefined when the gateway runs without keys (everyone is anonymous). */
  readonly keys: ApiKeys | undefined;
  readonly state: SharedState;
  /** The client's address, the subject of an anonymous caller. */
  readonly clientAddress: string;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * Resolves the Authorization header to a caller. With keys configured, a missing, malformed, unknown or revoked key is
 * an UnauthorizedError (401) whose message never quotes the token. SharedStateError when revocations cannot be read.
 */
export async function authenticate(header: string | undefined, options: AuthenticateOptions): Promise<Caller> {
  const { keys, state, clientAddress } = options;
  if (keys === undefined || keys.size === 0) return { subject: clientAddress, keyId: null, limits: {}, admin: false };
  if (header === undefined || header.trim() === '') {
    throw new UnauthorizedError('an API key is required: send it as "Authorization: Bearer <key>"');
  }
  const token = BEARER.exec(header)?.[1];
  if (token === undefined) throw new UnauthorizedError('the Authorization header must be "Bearer <key>"');
  const key = keys.find(token);
  if (key === undefined) throw new UnauthorizedError('invalid API key');
  if (await state.isRevoked(key.id)) throw new UnauthorizedError(`the API key "${key.id}" has been revoked`);
  return { subject: key.id, keyId: key.id, limits: key.limits, admin: key.admin };
}
