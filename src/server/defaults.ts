/**
 * Every default of the block server, once. The server's settings, `corolla serve`'s usage text and the batch
 * scheduler all read them from here.
 */
import { DEFAULT_CACHE_BUDGET_BYTES } from '../engine/span-executor.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../wire/frames.js';
import { DEFAULT_PREFILL_CHUNK_TOKENS } from '../engine/defaults.js';

export { DEFAULT_CACHE_BUDGET_BYTES, DEFAULT_MAX_FRAME_BYTES };

/** onnxruntime intra-op threads. */
export const DEFAULT_THREADS = 1;
/** Decode steps of different sessions per engine call (1 disables batching and its second graph). */
export const DEFAULT_MAX_BATCH = 8;
/** Longest wait for other sessions' decode steps before running a partial batch. */
export const DEFAULT_BATCH_WINDOW_MS = 2;
/** A session counts as decoding for this long after its latest decode step. */
export const DEFAULT_BATCH_ACTIVE_MS = 100;

/** A stream or session with no request for this long is closed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Hard cap on a session's life. */
export const DEFAULT_MAX_SESSION_MS = 60 * 60_000;
/** Sessions open at once on one stream. */
export const DEFAULT_MAX_SESSIONS_PER_STREAM = 8;
/** Rows of one stateless forward. */
export const DEFAULT_MAX_FORWARD_TOKENS = 4096;
/**
 * Tokens of one `step`: twice the clients' default prefill chunk (DEFAULT_PREFILL_CHUNK_TOKENS), so a client with a
 * larger chunk still fits, while one step's frame, compute time and attention memory stay bounded.
 */
export const DEFAULT_MAX_STEP_TOKENS = 2 * DEFAULT_PREFILL_CHUNK_TOKENS;
/** Ids of server-expired sessions remembered per stream (so late requests get SESSION_EXPIRED). */
export const MAX_EXPIRED_PER_STREAM = 64;
/** How long a graceful stream close may take before the stream is aborted. */
export const STREAM_CLOSE_TIMEOUT_MS = 2000;
/** libp2p stream limits for the server's protocols. */
export const STREAM_LIMITS = { maxInboundStreams: 256, maxOutboundStreams: 64 } as const;

/** How often an auto-chosen span is reconsidered by the rebalancing service (0 = never). */
export const DEFAULT_REBALANCE_INTERVAL_MS = 60_000;
/** Move when minBefore / minAfter < this: the swarm's minimum per-block throughput must rise by ≥ 33%. */
export const DEFAULT_BALANCE_QUALITY = 0.75;
/** Nominal link bandwidth for the announced network throughput estimate: 100 Mbit/s. */
export const DEFAULT_NETWORK_BPS = 100e6;
/** Longest wait for the OFFLINE announcement on stop, so a dead DHT cannot hang shutdown. */
export const WITHDRAW_TIMEOUT_MS = 5000;
