/**
 * `forward`: a stateless pass over the span, capped at maxForwardTokens rows; the reply uses the request's codec. Its
 * cache is a temporary session's: it is reserved in the KV budget (CACHE_FULL when it does not fit, REQUEST_TOO_LARGE
 * beyond the model's context) and runs through the scheduler in prefill chunks like any step.
 */
import { InvalidStepError } from '../../engine/errors.js';
import { RequestTooLargeError } from '../errors.js';
import { checkSpan, type RequestHandler } from './context.js';

let forwardSerial = 0;

export const handleForward: RequestHandler<'forward'> = async (ctx, _stream, m, hidden) => {
  checkSpan(ctx, m.spanStart, m.spanEnd);
  const [tokens, width] = m.tensor.shape as [number, number];
  const H = ctx.span.hiddenSize;
  if (width !== H) throw new InvalidStepError(`forward hidden states are ${width} wide, but this model's hidden size is ${H}`);
  if (tokens > ctx.maxForwardTokens) throw new RequestTooLargeError(`forward of ${tokens} rows exceeds this server's limit of ${ctx.maxForwardTokens}`);
  const engineId = `forward-${++forwardSerial}`;
  ctx.span.openSession(engineId, tokens);
  let out: Float32Array;
  try {
    out = await ctx.scheduler.submit({ sessionId: engineId, hidden: hidden! });
  } finally {
    ctx.span.closeSession(engineId);
    ctx.scheduler.forget(engineId);
  }
  return { header: { type: 'forwardResult', requestId: m.requestId }, tensor: { data: out, shape: [tokens, H], dtype: m.tensor.dtype } };
};
