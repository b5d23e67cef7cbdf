/** The oracle's defaults, in one place. */

/** Items per POST /v1/receipts or /v1/metrics. */
export const MAX_BATCH_ITEMS = 500;
/** A request body's limit: 500 receipts at ~600 bytes each, with room. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** How far ahead of the oracle's clock a signed time may be (the payer's clock may run fast). */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 60_000;
/** After an epoch ends, how long late receipts (payers retry while the oracle is down) are still taken before it may close. */
export const DEFAULT_CLOSE_GRACE_MS = 5 * 60_000;
export const DEFAULT_ORACLE_PORT = 8200;
export const DEFAULT_ORACLE_HOST = '127.0.0.1';
/** How often `corolla oracle` looks for epochs to close. */
export const DEFAULT_CLOSE_INTERVAL_MS = 30_000;
