/**
 * Defaults of the shared state (Redis or memory), once, each with why.
 */

/** Every Redis key this gateway writes starts with this, so one Redis can serve other applications (or test runs). */
export const DEFAULT_KEY_PREFIX = 'corolla:';

/** Rate limits are budgets per minute: fixed windows of this many seconds. */
export const RATE_WINDOW_SECONDS = 60;

/**
 * How long a live session outlives its last update (ms). A gateway refreshes a session as it streams (putSession), so
 * only a dead gateway's sessions stop being refreshed; they vanish from every dashboard within this time.
 */
export const DEFAULT_SESSION_TTL_MS = 60_000;

/** Most live sessions `sessions()` returns, so a listing stays bounded whatever lands in Redis. */
export const MAX_LISTED_SESSIONS = 10_000;

/** Keys asked per SCAN step while listing sessions. */
export const SESSION_SCAN_COUNT = 200;

/**
 * Redis connection limits. A gateway must answer 503 quickly when Redis is away, never hang a request on it: the
 * first connection gives up after CONNECT_TIMEOUT_MS; commands are not queued while disconnected (they fail at
 * once), a command in flight when the connection drops is not resent (INCRBY twice would charge twice), and a
 * command Redis does not answer fails after COMMAND_TIMEOUT_MS. Reconnection goes on in the background.
 */
export const REDIS_CONNECT_TIMEOUT_MS = 2_000;
export const REDIS_COMMAND_TIMEOUT_MS = 2_000;
export const REDIS_MAX_RECONNECT_DELAY_MS = 2_000;
