/**
 * `step`: runs hidden states at `position` through the session's cache. Equal to the session's position appends,
 * lower rewinds first (replay after failover), higher is INVALID_STEP. The reply uses the codec named at `open`, or the
 * step's own codec when that one is smaller (a reply is never larger than its request unless the client sent it so).
 */
import { InvalidStepError } from '../../engine/errors.js';
import { asReceived } from '../../wire/attestation.js';
import type { StepMessage } from '../../wire/messages.js';
import type { WireDtype } from '../../wire/tensor-codec.js';
import type { StreamState } from '../session-table.js';
import { RequestTooLargeError } from '../errors.js';
import type { RequestContext, RequestHandler } from './context.js';

/** Codecs from the smallest encoding to the largest. */
const BY_SIZE: readonly WireDtype[] = ['int8', 'f16', 'f32'];
const smaller = (a: WireDtype, b: WireDtype): WireDtype => (BY_SIZE.indexOf(a) <= BY_SIZE.indexOf(b) ? a : b);

/** What a step's header alone decides, checked before its tensor is decoded: the session, the width and the size. */
export function checkStepHeader(ctx: RequestContext, stream: StreamState, m: StepMessage): void {
  const session = ctx.sessions.find(stream, m.sessionId);
  const H = ctx.span.hiddenSize;
  const width = m.tensor.shape[1]!;
  if (width !== H) throw new InvalidStepError(`step hidden states are ${width} wide, but this model's hidden size is ${H}`);
  if (m.tokens > ctx.maxStepTokens) throw new RequestTooLargeError(`step of ${m.tokens} tokens exceeds this server's limit of ${ctx.maxStepTokens} per step; send it in chunks`);
  if (m.position + m.tokens > session.maxLength) {
    throw new InvalidStepError(`step of ${m.tokens} tokens at position ${m.position} exceeds maxLength ${session.maxLength} of session "${m.sessionId}"`);
  }
}

export const handleStep: RequestHandler<'step'> = async (ctx, stream, m, hidden) => {
  checkStepHeader(ctx, stream, m);
  const session = ctx.sessions.find(stream, m.sessionId);
  const current = ctx.span.session(session.engineId)?.position ?? 0;
  if (m.position > current) {
    throw new InvalidStepError(`step at position ${m.position} is ahead of session "${m.sessionId}", which holds ${current} tokens (a step may only repeat or go back)`);
  }
  const out = await ctx.sessions.run(session, hidden!, m.position);
  const dtype = smaller(session.codec, m.tensor.dtype);
  const H = ctx.span.hiddenSize;
  const attestation = ctx.attester ? await ctx.attester.attest(session, m, hidden!, asReceived(out, H, dtype), dtype) : undefined;
  return {
    header: { type: 'stepResult', sessionId: m.sessionId, stepId: m.stepId, position: m.position, ...(attestation ? { attestation } : {}) },
    tensor: { data: out, shape: [m.tokens, H], dtype },
  };
};
