/**
 * What a block server tells its owner, as typed events (`server.addEventListener('session:close', (evt) =>
 * evt.detail.tokens)`): sessions opening and closing, announcements, span moves.
 */
import type { ServerState } from '../swarm/records/index.js';
import type { BlockRange } from '../util/blocks.js';

/** Why a session ended: the client closed it, the server expired it, its stream ended, or the server stopped or moved. */
export type SessionCloseReason = 'closed' | 'expired' | 'stream-ended' | 'shutdown';

export interface SessionOpenEvent {
  /** The client's session id (local sessions: the server's). */
  readonly sessionId: string;
  /** The client's peer id; undefined for sessions opened in-process (whole-model generation). */
  readonly peerId: string | undefined;
  readonly blocks: BlockRange;
  /** Tokens reserved in the KV cache. */
  readonly maxLength: number;
  /** Tokens processed so far (0 on open). */
  readonly tokens: number;
}

export interface SessionCloseEvent extends SessionOpenEvent {
  readonly reason: SessionCloseReason;
  /** Steps run for the session. */
  readonly steps: number;
  readonly durationMs: number;
}

export interface AnnouncedEvent {
  readonly state: ServerState;
  readonly blocks: BlockRange;
}

export interface RebalancedEvent {
  readonly from: BlockRange;
  readonly to: BlockRange;
}

export interface BlockServerEvents {
  'session:open': CustomEvent<SessionOpenEvent>;
  'session:close': CustomEvent<SessionCloseEvent>;
  announced: CustomEvent<AnnouncedEvent>;
  rebalanced: CustomEvent<RebalancedEvent>;
}
