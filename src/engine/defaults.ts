/** Engine defaults, in one place. */

/** KV-cache budget of a span when none is given: 2 GiB across its sessions. */
export const DEFAULT_CACHE_BUDGET_BYTES = 2 * 1024 ** 3;
/**
 * Most tokens of one prefill graph call. A prefill's attention scores and mask take tokens × (past + tokens) floats
 * per head, so a longer step runs as several calls of this many tokens, each attending to the cached prefix plus
 * itself: attention memory stays bounded by chunk × context, and one call (which blocks the event loop) stays short.
 * 256 keeps a SmolLM2-135M call at 8k context near 0.1 GB of scores and well under a second.
 */
export const DEFAULT_PREFILL_CHUNK_TOKENS = 256;
