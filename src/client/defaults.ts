/**
 * Defaults of the client's issue-7 limits (exactness, blame, measured routing), once, each with why.
 */

/**
 * Largest |value| a hop may return in a hidden state. LLM residual streams reach a few thousand ("massive
 * activations", ~1e4 at most in published models); a value past this is a broken or hostile server, and is charged
 * to the hop that produced it rather than to the next one, which would fail on it.
 */
export const DEFAULT_MAX_HIDDEN_MAGNITUDE = 1e6;

/**
 * Route cost added to a replacement whose engine fingerprint differs from the failed hop's (ms): 10 s per step is
 * more than any real route costs, so a matching server always wins where one exists, and a mismatching one is still
 * used (with a downstream rewind) where none does.
 */
export const DEFAULT_ENGINE_MISMATCH_PENALTY_MS = 10_000;

/**
 * Longest a directory lookup may take as a whole (ms). The registry bounds each DHT query, but a walk over many
 * unresponsive (or hostile, slow-answering) peers can add those up; past this the client keeps its cached view.
 */
export const DEFAULT_LOOKUP_DEADLINE_MS = 15_000;

/** Step latencies kept per server; the planner uses their median (one slow step does not condemn a server). */
export const MEASURED_STEP_SAMPLES = 16;

/**
 * How long a server caught returning wrong hidden states by a spot-check is banned (ms): a day, not the doubling
 * ban of a failure, since wrong results are a choice, not an accident.
 */
export const DEFAULT_CHEAT_BAN_MS = 24 * 60 * 60_000;
/** Spot-checks running at once per client: they are background work and must not crowd out the user's sessions. */
export const DEFAULT_SPOT_CHECK_CONCURRENCY = 1;
/** Checks waiting beyond the ones running; more are dropped (counted in stats.dropped). */
export const DEFAULT_SPOT_CHECK_QUEUE = 16;
