/**
 * `step`: runs hidden states at `position` through the session's cache. Equal to the session's position appends,
 * lower rewinds first (replay after failover), higher is INVALID_STEP. The reply uses the codec named at `open`, or the
 * step's own codec when that one is smaller (a reply is never larger than its request unless the client sent it so).
 * With `next`, the output is also pushed to next[0] (push.ts) before the reply, which says whether it was accepted.
 * The reply reports the time the step took on this server (`computeMs`: queue + engine).
 */
import { InvalidStepError } from '../../engine/errors.js';
import { asReceived } from '../../wire/attestation.js';
import type { NextHop, StepMessage, PushMessage } from '../../wire/messages.js';
import type { WireDtype } from '../../wire/tensor-codec.js';
import type { ServedSession, StreamState } from '../session-table.js';
import { RequestTooLargeError } from '../errors.js';
import type { Reply, RequestContext, RequestHandler } from './context.js';

/** Codecs from the smallest encoding to the largest. */
const BY_SIZE: readonly WireDtype[] = ['int8', 'f16', 'f32'];
const smaller = (a: WireDtype, b: WireDtype): WireDtype => (BY_SIZE.indexOf(a) <= BY_SIZE.indexOf(b) ? a : b);

/** What a step's (or a push's) header alone decides about its session: the width and the size. */
export function checkStepFields(ctx: RequestContext, session: ServedSession, m: StepMessage | PushMessage): void {
  const H = ctx.span.hiddenSize;
  const width = m.tensor.shape[1]!;
  if (width !== H) throw new InvalidStepError(`step hidden states are ${width} wide, but this model's hidden size is ${H}`);
  if (m.tokens > ctx.maxStepTokens) throw new RequestTooLargeError(`step of ${m.tokens} tokens exceeds this server's limit of ${ctx.maxStepTokens} per step; send it in chunks`);
  if (m.position + m.tokens > session.maxLength) {
    throw new InvalidStepError(`step of ${m.tokens} tokens at position ${m.position} exceeds maxLength ${session.maxLength} of session "${m.sessionId}"`);
  }
}

/** What a step's header alone decides, checked before its tensor is decoded: the session, the width and the size. */
export function checkStepHeader(ctx: RequestContext, stream: StreamState, m: StepMessage): void {
  checkStepFields(ctx, ctx.sessions.find(stream, m.sessionId), m);
}

/**
 * Runs a validated step (from its client, or pushed by its upstream) on `session`, pushes the output on when `next`
 * names more hops, and builds the stepResult for the client.
 */
export async function runStep(ctx: RequestContext, session: ServedSession, client: string | undefined, m: StepMessage | PushMessage, hidden: Float32Array): Promise<Reply> {
  const current = ctx.span.session(session.engineId)?.position ?? 0;
  if (m.position > current) {
    throw new InvalidStepError(`step at position ${m.position} is ahead of session "${m.sessionId}", which holds ${current} tokens (a step may only repeat or go back)`);
  }
  const started = performance.now();
  const out = await ctx.sessions.run(session, hidden, m.position);
  const computeMs = performance.now() - started;
  const H = ctx.span.hiddenSize;
  const dtype = smaller(session.codec, m.tensor.dtype);
  const tensor = { data: out, shape: [m.tokens, H], dtype };
  const [forwarded, attestation] = await Promise.all([
    m.next ? pushOn(ctx, client, m.next, m, tensor) : undefined,
    ctx.attester?.attest(session, m, hidden, asReceived(out, H, dtype), dtype),
  ]);
  return {
    header: { type: 'stepResult', sessionId: m.sessionId, stepId: m.stepId, position: m.position, ...(forwarded !== undefined ? { forwarded } : {}), computeMs: round(computeMs), ...(attestation ? { attestation } : {}) },
    tensor,
  };
}

/** Pushes an output to the next hop; false when this server does not forward or the next hop did not accept it. */
function pushOn(ctx: RequestContext, client: string | undefined, next: readonly NextHop[], m: StepMessage | PushMessage, tensor: Reply['tensor'] & object): Promise<boolean> {
  if (!ctx.forwarder || client === undefined) return Promise.resolve(false);
  return ctx.forwarder.push(next, { client, position: m.position, tokens: m.tokens, tensor });
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** Milliseconds since `started` (a performance.now()), to the microsecond, as replies report them. */
export const msSince = (started: number): number => round(performance.now() - started);

export const handleStep: RequestHandler<'step'> = (ctx, stream, m, hidden) => {
  checkStepHeader(ctx, stream, m);
  return runStep(ctx, ctx.sessions.find(stream, m.sessionId), stream.peerId, m, hidden!);
};
