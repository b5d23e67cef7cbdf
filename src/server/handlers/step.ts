/**
 * `step`: runs hidden states at `position` through the session's cache. Equal to the session's position appends,
 * lower rewinds first (replay after failover), higher is INVALID_STEP. The reply uses the codec named at `open`.
 */
import { InvalidStepError } from '../../engine/errors.js';
import { RequestTooLargeError } from '../errors.js';
import type { RequestHandler } from './context.js';

export const handleStep: RequestHandler<'step'> = async (ctx, stream, m, hidden) => {
  const session = ctx.sessions.find(stream, m.sessionId);
  const H = ctx.span.hiddenSize;
  const width = m.tensor.shape[1]!;
  if (width !== H) throw new InvalidStepError(`step hidden states are ${width} wide, but this model's hidden size is ${H}`);
  const current = ctx.span.session(session.engineId)?.position ?? 0;
  if (m.tokens > ctx.maxStepTokens) {
    throw new RequestTooLargeError(`step of ${m.tokens} tokens exceeds this server's limit of ${ctx.maxStepTokens} tokens per step (send a long prompt in chunks)`);
  }
  if (m.position > current) {
    throw new InvalidStepError(`step at position ${m.position} is ahead of session "${m.sessionId}", which holds ${current} tokens (a step may only repeat or go back)`);
  }
  if (m.position + m.tokens > session.maxLength) {
    throw new InvalidStepError(`step of ${m.tokens} tokens at position ${m.position} exceeds maxLength ${session.maxLength} of session "${m.sessionId}"`);
  }
  const out = await ctx.sessions.run(session, hidden!, m.position);
  return {
    header: { type: 'stepResult', sessionId: m.sessionId, stepId: m.stepId, position: m.position },
    tensor: { data: out, shape: [m.tokens, H], dtype: session.codec },
  };
};
