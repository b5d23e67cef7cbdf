/** Errors of the usage ledger beyond those the HTTP layer already knows (src/gateway/errors.ts). */
import { CorollaError } from '../../errors.js';

/** A FAR amount that is not a plain non-negative decimal with at most 18 fractional digits. */
export class InvalidAmountError extends CorollaError {
  override readonly name = 'InvalidAmountError';
  constructor(readonly amount: string, reason: string) {
    super('INVALID_REQUEST', `invalid FAR amount "${amount.slice(0, 100)}": ${reason}`);
  }
}

/** Another process (or another ledger in this one) has the PGlite data directory open; PGlite itself does not lock it. */
export class LedgerLockedError extends CorollaError {
  override readonly name = 'LedgerLockedError';
  constructor(readonly dataDir: string, readonly pid: number, lockFile: string) {
    super(
      'LEDGER_FAILED',
      `the ledger in ${dataDir} is in use by process ${pid}: only one process may open an embedded (PGlite) ledger at a time. ` +
        `Give several gateways one PostgreSQL --database-url instead; if process ${pid} is not a Corolla process, delete ${lockFile}.`,
    );
  }
}
