/** Errors of the oracle. Its HTTP answers map them to a status through ERROR_CODES. */
import { CorollaError } from '../errors.js';

/** A request body that is not what the API takes (wrong shape, too many items). */
export class InvalidReportError extends CorollaError {
  override readonly name = 'InvalidReportError';
  constructor(message: string, readonly param: string | null = null) {
    super('INVALID_REQUEST', message);
  }
}

export class BodyTooLargeError extends CorollaError {
  override readonly name = 'BodyTooLargeError';
  constructor(maxBytes: number) {
    super('REQUEST_TOO_LARGE', `the request body is larger than ${maxBytes} bytes`);
  }
}

/** A batch with more items than one request may carry. */
export class BatchTooLargeError extends CorollaError {
  override readonly name = 'BatchTooLargeError';
  constructor(field: string, count: number, max: number) {
    super('REQUEST_TOO_LARGE', `"${field}" holds ${count} items; at most ${max} per request`);
  }
}

/** Closing an epoch before it (and its grace period for late receipts) has ended. */
export class EpochNotEndedError extends CorollaError {
  override readonly name = 'EpochNotEndedError';
  constructor(readonly epoch: bigint, closesAt: number) {
    super('INVALID_REQUEST', `epoch ${epoch} cannot close before ${new Date(closesAt).toISOString()}`);
  }
}

/** The oracle's database failed (the message may quote it, so it stays internal). */
export class OracleStoreError extends CorollaError {
  override readonly name = 'OracleStoreError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('LEDGER_FAILED', message, options);
  }
}

/** The pool already holds a different root for the epoch (another oracle reported it): the stored results are not paid. */
export class EpochReportedElsewhereError extends CorollaError {
  override readonly name = 'EpochReportedElsewhereError';
  constructor(readonly epoch: bigint, onChainRoot: string, storedRoot: string) {
    super('CHAIN_FAILED', `epoch ${epoch} is already reported on chain with root ${onChainRoot}, not this oracle's ${storedRoot}`);
  }
}
