/**
 * The gateway's seams: the usage ledger (Postgres or PGlite), the state several gateways share (Redis or memory),
 * and what the dashboard is fed. Implementations live in ledger/ and state/; the HTTP layer (routes/) only sees
 * these interfaces, so tests and deployments can swap them.
 */

/** How a request ended. `running` until it ends; a gateway that dies leaves `running` rows that become `interrupted`. */
export type RequestStatus = 'running' | 'completed' | 'stopped' | 'cancelled' | 'failed' | 'interrupted';

/** Which API a request came through. */
export type RequestApi = 'far-mesh' | 'chat.completions' | 'completions';

/** One request as the ledger records it. Money is in integer base units (1 FAR = 10^18 units), never a float. */
export interface RequestRecord {
  readonly id: string;
  readonly api: RequestApi;
  /** The API key's id, when the request carried one. */
  readonly apiKeyId: string | null;
  /** The payer's wallet (Far Mesh `user_wallet`), when given. */
  readonly wallet: string | null;
  /** The public model name the client asked for. */
  readonly model: string;
  /** The gateway instance that served it (several gateways may share one database). */
  readonly gatewayId: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Cost in base units. */
  readonly costUnits: bigint;
  readonly status: RequestStatus;
  /** A short reason for `failed` (an error code and message). */
  readonly error: string | null;
  readonly startedAt: Date;
  readonly firstTokenAt: Date | null;
  readonly endedAt: Date | null;
}

/** Which server computed which blocks of one request, for how many tokens. Replaced servers keep their rows. */
export interface NodeContribution {
  readonly peerId: string;
  /** The server's Ethereum address, once servers announce one (issue: incentives). */
  readonly ethAddress: string | null;
  readonly blockStart: number;
  readonly blockEnd: number;
  readonly promptTokens: number;
  readonly generatedTokens: number;
  readonly replayedTokens: number;
  /** The server failed during the request and was replaced. */
  readonly failed: boolean;
}

export type NewRequest = Pick<RequestRecord, 'id' | 'api' | 'apiKeyId' | 'wallet' | 'model' | 'gatewayId' | 'promptTokens' | 'startedAt'>;

/** What has been served so far; written in batches while a request streams, and once more at its end. */
export interface RequestProgress {
  readonly completionTokens: number;
  readonly costUnits: bigint;
  readonly firstTokenAt: Date | null;
  /** The whole attribution so far (replaces the previous one; rows are keyed by peer and blocks). */
  readonly contributions: readonly NodeContribution[];
}

export interface RequestEnd extends RequestProgress {
  readonly status: Exclude<RequestStatus, 'running' | 'interrupted'>;
  readonly error: string | null;
  readonly endedAt: Date;
}

export interface UsageEntry {
  readonly request: RequestRecord;
  readonly contributions: readonly NodeContribution[];
}

export interface ListUsageOptions {
  readonly since?: Date;
  readonly until?: Date;
  /** Newest first when set; oldest first (export order) otherwise. */
  readonly newestFirst?: boolean;
  readonly limit?: number;
}

/** A signed Receipt (chain/receipts.ts) for one server's work on one request, as the oracle takes it. */
export interface OutboxReceipt {
  readonly requestId: string;
  /** The server's verified Ethereum address. */
  readonly server: string;
  readonly blockStart: number;
  readonly blockEnd: number;
  /** The Receipt in its JSON form (every bigint a decimal string). */
  readonly message: Readonly<Record<string, string | number>>;
  readonly signature: string;
}

/** A receipt in the outbox that the oracle has not answered for yet. */
export interface PendingReceipt extends OutboxReceipt {
  readonly id: number;
}

/**
 * The usage ledger: the basis of payment. Every write is durable when its promise resolves; nothing recorded is ever
 * lost or rewritten except by the request's own later progress.
 */
export interface Ledger {
  /** Records a new request with status `running`. Fails on a duplicate id (RequestIdTakenError). */
  begin(request: NewRequest): Promise<void>;
  /** Writes the progress of a running request (idempotent: the latest call wins). */
  progress(id: string, progress: RequestProgress): Promise<void>;
  /** Ends a request with its final counts and status, and puts its signed receipts in the outbox in the same transaction. */
  finish(id: string, end: RequestEnd, receipts?: readonly OutboxReceipt[]): Promise<void>;
  get(id: string): Promise<UsageEntry | undefined>;
  list(options?: ListUsageOptions): Promise<UsageEntry[]>;
  /**
   * Marks `running` requests as `interrupted`: those of `gatewayId` (a restarted gateway's own leftovers), and any
   * whose last write is older than `staleMs` (a dead gateway's). With `sign`, each one's receipts (for what its last
   * write recorded) go to the outbox in the same transaction. Returns how many rows changed.
   */
  recover(options: { gatewayId: string; staleMs: number; sign?: (entry: UsageEntry) => Promise<OutboxReceipt[]> }): Promise<number>;
  /** Puts signed receipts in the outbox; one already there (same request, server and blocks) is kept as it is. */
  addReceipts(receipts: readonly OutboxReceipt[]): Promise<void>;
  /** Up to `limit` receipts the oracle has not answered for, oldest first. */
  pendingReceipts(limit: number): Promise<PendingReceipt[]>;
  /** Takes receipts out of the pending set once the oracle has answered for them. */
  markReceiptsSent(ids: readonly number[]): Promise<void>;
  close(): Promise<void>;
}

/** Per-key limits; undefined fields are unlimited. */
export interface KeyLimits {
  readonly requestsPerMinute?: number;
  readonly tokensPerMinute?: number;
}

/** A live generation, as every gateway sharing the state sees it. */
export interface LiveSession {
  readonly id: string;
  readonly model: string;
  readonly api: RequestApi;
  readonly gatewayId: string;
  readonly startedAt: number;
  readonly promptTokens: number;
  completionTokens: number;
  /** Peer ids currently serving it. */
  servers: string[];
}

/**
 * State shared by every gateway behind one load balancer (Redis), or kept in memory by a lone gateway.
 * Rate limits are per API key (or per client address without keys).
 */
export interface SharedState {
  /** Takes one request from the key's budget; throws RateLimitedError (with retryAfterMs) when it is spent. */
  takeRequest(subject: string, limits: KeyLimits): Promise<void>;
  /** Throws RateLimitedError when the key has no tokens left this minute (checked before a request starts). */
  checkTokens(subject: string, limits: KeyLimits): Promise<void>;
  /** Charges tokens served to the key (after or while a request streams); never throws for an exhausted budget. */
  chargeTokens(subject: string, tokens: number, limits: KeyLimits): Promise<void>;
  revokeKey(keyId: string): Promise<void>;
  isRevoked(keyId: string): Promise<boolean>;
  /** Live sessions: registered when a generation starts, updated as it streams, removed at its end (or expire). */
  putSession(session: LiveSession): Promise<void>;
  removeSession(id: string): Promise<void>;
  sessions(): Promise<LiveSession[]>;
  close(): Promise<void>;
}

/** Who a request is from, once authenticated. */
export interface AuthContext {
  /** The API key's id; null without API keys (anonymous). */
  readonly keyId: string | null;
  /** What rate limits count against: the key id, or the client's address when there are no keys. */
  readonly subject: string;
  readonly limits: KeyLimits;
  /** May read usage records and revoke keys. */
  readonly admin: boolean;
}
