/** The gateway's defaults and limits, in one place. */

export const DEFAULT_GATEWAY_PORT = 8100;
export const DEFAULT_GATEWAY_HOST = '127.0.0.1';
/** Far Mesh's default price per generated token, in FAR (a decimal string; stored exactly as base units). */
export const DEFAULT_PRICE_PER_TOKEN_FAR = '0.0001';
/** The service name `/health` reports. */
export const SERVICE_NAME = 'corolla-gateway';

/** Largest request body accepted (bytes); larger ones get a 413 before they are read whole. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Longest prompt or message content accepted (characters), before tokenization. */
export const MAX_PROMPT_CHARS = 512 * 1024;
export const MAX_MESSAGES = 1024;
/** OpenAI allows up to four stop sequences. */
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_CHARS = 256;
/** Longest request id / user / wallet accepted (characters). */
export const MAX_ID_CHARS = 128;

/** How often a model's servers are looked up again (ms). */
export const DEFAULT_MODEL_REFRESH_MS = 2_000;
/** Progress of a streaming request is written to the ledger at most this often (ms)… */
export const LEDGER_FLUSH_MS = 1_000;
/** …or after this many tokens, whichever comes first. */
export const LEDGER_FLUSH_TOKENS = 256;
/** A `running` ledger row not written for this long belongs to a dead gateway and becomes `interrupted` (ms). */
export const STALE_REQUEST_MS = 2 * 60_000;
/** How often the stale-request sweep runs (ms). */
export const RECOVER_INTERVAL_MS = 60_000;
/** Live sessions in the shared state are refreshed this often (ms). */
export const LIVE_SESSION_UPDATE_MS = 1_000;
/** The dashboard feed pushes a snapshot this often (ms). */
export const DASHBOARD_PUSH_MS = 1_000;
/** Recent requests the dashboard shows. */
export const DASHBOARD_RECENT_REQUESTS = 20;
/** How long close() waits for in-flight generations to end after aborting them (ms). */
export const SHUTDOWN_GRACE_MS = 5_000;
/** On close, how long responses in flight get to write their last bytes before their connections are cut. */
export const RESPONSE_DRAIN_MS = 500;
/** How often the receipt sender posts pending receipts to the oracle (ms). */
export const RECEIPT_FLUSH_MS = 5_000;
/** Receipts per POST /v1/receipts (the oracle's own batch limit). */
export const RECEIPT_BATCH_SIZE = 500;
/** The longest wait between tries while the oracle is unreachable or failing (ms). */
export const RECEIPT_MAX_BACKOFF_MS = 60_000;
/** One POST to the oracle may take this long before it counts as a failure (ms). */
export const RECEIPT_POST_TIMEOUT_MS = 10_000;
/** close() gives the last flush this long (ms). */
export const RECEIPT_CLOSE_FLUSH_MS = 2_000;

/**
 * Fraction of (session, hop) pairs the gateway re-runs on another server (client/spot-check.ts). 5 %: about 5 % more
 * swarm compute, run after each request; a server that cheats on a fraction f of its sessions is caught within
 * n sessions with probability 1 − (1 − 0.05·f)^n (f = 1: 92 % by 50, 99.4 % by 100), and one catch costs it the epoch.
 */
export const DEFAULT_SPOT_CHECK_RATE = 0.05;
/** Tries to post one piece of spot-check evidence to the oracle (with doubling waits from 1 s) before it is dropped. */
export const EVIDENCE_POST_TRIES = 5;
