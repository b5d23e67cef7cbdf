/** `forward`: a stateless pass over the span, capped at maxForwardTokens rows; the reply uses the request's codec. */
import { InvalidStepError } from '../../engine/errors.js';
import { RequestTooLargeError } from '../errors.js';
import { checkSpan, type RequestHandler } from './context.js';

export const handleForward: RequestHandler<'forward'> = async (ctx, _stream, m, hidden) => {
  checkSpan(ctx, m.spanStart, m.spanEnd);
  const [tokens, width] = m.tensor.shape as [number, number];
  const H = ctx.span.hiddenSize;
  if (width !== H) throw new InvalidStepError(`forward hidden states are ${width} wide, but this model's hidden size is ${H}`);
  if (tokens > ctx.maxForwardTokens) throw new RequestTooLargeError(`forward of ${tokens} rows exceeds this server's limit of ${ctx.maxForwardTokens}`);
  const out = await ctx.span.forward(hidden!, tokens);
  return { header: { type: 'forwardResult', requestId: m.requestId }, tensor: { data: out, shape: [tokens, H], dtype: m.tensor.dtype } };
};
