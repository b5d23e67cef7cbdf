/**
 * Every default of the block server, once. The server's settings, `corolla serve`'s usage text and the batch
 * scheduler all read them from here.
 */
import { DEFAULT_CACHE_BUDGET_BYTES } from '../engine/span-executor.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../wire/frames.js';
import { DEFAULT_PREFILL_CHUNK_TOKENS } from '../engine/defaults.js';
import { BLOCK_STREAMS_PER_PEER } from '../wire/protocols.js';

export { DEFAULT_CACHE_BUDGET_BYTES, DEFAULT_MAX_FRAME_BYTES };

/** onnxruntime intra-op threads. */
export const DEFAULT_THREADS = 1;
/** Decode steps of different sessions per engine call (1 disables batching and its second graph). */
export const DEFAULT_MAX_BATCH = 8;
/** Longest wait for other sessions' decode steps before running a partial batch. */
export const DEFAULT_BATCH_WINDOW_MS = 2;
/** A session counts as decoding for this long after its latest decode step (or twice its own step interval). */
export const DEFAULT_BATCH_ACTIVE_MS = 100;
/** A session stepping less often than every MAX_ACTIVE_FACTOR / 2 × activeMs is not waited for. */
export const MAX_ACTIVE_FACTOR = 10;

/** Longest wait for the next hop to accept a pushed (forwarded) step; past it the client goes on hop by hop. */
export const DEFAULT_FORWARD_TIMEOUT_MS = 5_000;
/** Outbound streams to next hops kept open at once (the least recently used is closed beyond it). */
export const MAX_FORWARD_LINKS = 64;

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
/**
 * Messages shorter than a frame (empty, or under the 6-byte minimum) a stream may send in a row before it is closed:
 * each is answered with an error of ~100 bytes, so a run of junk bytes must not buy a run of replies.
 */
export const MAX_TINY_MESSAGES_IN_A_ROW = 16;
/** How long a graceful stream close may take before the stream is aborted. */
export const STREAM_CLOSE_TIMEOUT_MS = 2000;
/**
 * Per-peer quotas (see quotas.ts). A peer is one libp2p peer id; an IP is every peer behind one address (Sybils,
 * NAT), so its quotas are a few peers' worth.
 */
/** Sessions one peer may hold: a gateway multiplexing 100+ users through one server fits. */
export const DEFAULT_MAX_SESSIONS_PER_PEER = 256;
/** Block-protocol streams one peer may hold open at once (the client's outbound limit is the same constant). */
export const DEFAULT_MAX_STREAMS_PER_PEER = BLOCK_STREAMS_PER_PEER;
/** Share of the KV budget one peer may reserve while other peers hold sessions (alone it may borrow more, below). */
export const DEFAULT_PEER_CACHE_SHARE = 0.25;
/** Bytes of request frames one peer may have in flight (received, not yet answered): ~7 full-size prefill frames of a 576-wide model. */
export const DEFAULT_MAX_PEER_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
/** An IP address gets this many peers' worth of each quota (sessions, streams, cache share capped at 1, bytes). */
export const DEFAULT_IP_QUOTA_MULTIPLIER = 2;
/**
 * Dribbling sessions: after this grace period a session must have cached at least DEFAULT_MIN_SESSION_RATE tokens
 * per second of its age, or it is closed (a step every idle timeout − ε would otherwise hold its cache for the
 * whole session time cap).
 */
export const DEFAULT_SLOW_SESSION_GRACE_MS = 5 * 60_000;
/** Tokens per second (of KV position reached) a session must average once past the grace period: 6 per minute. */
export const DEFAULT_MIN_SESSION_RATE = 0.1;

/**
 * libp2p stream limits for the server's protocols: the inbound limit (per connection) is a backstop twice the
 * per-peer quota, so a peer over its quota gets our typed QUOTA_EXCEEDED rather than a reset stream; outbound
 * matters when this node dials the same protocol (libp2p applies a handler's limits to both directions).
 */
export const STREAM_LIMITS = { maxInboundStreams: 2 * BLOCK_STREAMS_PER_PEER, maxOutboundStreams: BLOCK_STREAMS_PER_PEER } as const;

/** How often an auto-chosen span is reconsidered by the rebalancing service (0 = never). */
export const DEFAULT_REBALANCE_INTERVAL_MS = 60_000;
/** Move when minBefore / minAfter < this: the swarm's minimum per-block throughput must rise by ≥ 33%. */
export const DEFAULT_BALANCE_QUALITY = 0.75;
/** Peers remembered as seen ONLINE (span choice counts JOINING records only from these); bounds memory under a flood of ids. */
export const DEFAULT_SERVING_HISTORY = 4096;
/** Nominal link bandwidth for the announced network throughput estimate: 100 Mbit/s. */
export const DEFAULT_NETWORK_BPS = 100e6;
/** Longest wait for the OFFLINE announcement on stop, so a dead DHT cannot hang shutdown. */
export const WITHDRAW_TIMEOUT_MS = 5000;
