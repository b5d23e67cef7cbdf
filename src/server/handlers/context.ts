/** What every block-protocol request handler works with: one loaded span, its sessions and its limits. */
import { InvalidSpanError } from '../../engine/errors.js';
import type { SpanExecutor } from '../../engine/types.js';
import type { BlockRange } from '../../util/blocks.js';
import type { Message, MessageInput, TensorInput } from '../../wire/messages.js';
import type { StepAttester } from '../attestation.js';
import type { BatchScheduler } from '../batch-scheduler.js';
import type { ForwardLinks } from '../forward-links.js';
import type { PeerQuotas } from '../quotas.js';
import type { ServedSession, SessionTable, StreamState } from '../session-table.js';

export interface RequestContext {
  readonly span: SpanExecutor;
  readonly range: BlockRange;
  readonly sessions: SessionTable;
  readonly maxSessionsPerStream: number;
  readonly maxForwardTokens: number;
  /** Most tokens of one step (DEFAULT_MAX_STEP_TOKENS unless configured; REQUEST_TOO_LARGE beyond). */
  readonly maxStepTokens: number;
  readonly quotas: PeerQuotas;
  /** Runs steps (and forwards) of every session, see BatchScheduler. */
  readonly scheduler: BatchScheduler;
  /** Streams to next hops, when this server forwards (undefined: it does not, and says so at `open`). */
  readonly forwarder: ForwardLinks | undefined;
  /** Each session's upstream: the one peer its client allows to `push` steps into it. */
  readonly upstreams: WeakMap<ServedSession, string>;
  /** Sends a reply on a session's own (client) stream, for steps that arrived by `push`; false when it is gone. */
  deliver(owner: StreamState, reply: Reply): Promise<boolean>;
  /** Signs step replies (absent: replies go unsigned, which clients refuse). */
  readonly attester?: StepAttester;
}

export interface Reply {
  readonly header: MessageInput;
  readonly tensor?: TensorInput;
  /**
   * Started once the reply is written (or could not be). A pushed step runs after its `pushed` goes out: the upstream
   * then sends its own stepResult while this hop computes, instead of after, off the chain's critical path.
   */
  readonly afterReply?: () => void;
}

export type Request<T extends Message['type']> = Extract<Message, { type: T }>;

/** A handler answers one request on one stream; `hidden` is the request's tensor, when it carries one. */
export type RequestHandler<T extends Message['type']> = (ctx: RequestContext, stream: StreamState, message: Request<T>, hidden: Float32Array | undefined) => Reply | Promise<Reply>;

/** The span runs as one fused graph: a request must name exactly this server's blocks. */
export function checkSpan(ctx: RequestContext, spanStart: number, spanEnd: number): void {
  const { start, end } = ctx.range;
  if (spanStart !== start || spanEnd !== end) {
    throw new InvalidSpanError(`this server serves exactly blocks [${start}, ${end}); [${spanStart}, ${spanEnd}) was requested (sub-ranges are not offered)`);
  }
}
