/** Errors of the gateway's API keys (those answered to HTTP clients live in ../errors.ts). */
import { CorollaError } from '../../errors.js';

/** The API-keys file is unreadable or invalid; the message names the file and the bad entry, never a key. */
export class ApiKeysFileError extends CorollaError {
  override readonly name = 'ApiKeysFileError';
  constructor(readonly file: string, reason: string, options: { cause?: unknown } = {}) {
    super('SERVER_CONFIG', `API keys file ${file}: ${reason}`, options);
  }
}
