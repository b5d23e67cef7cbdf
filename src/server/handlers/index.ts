/** One handler per block-protocol request; every other message type is UNEXPECTED_MESSAGE. */
import type { DecodedMessage, Message } from '../../wire/messages.js';
import { UnexpectedMessageError } from '../errors.js';
import type { StreamState } from '../session-table.js';
import { handleClose } from './close.js';
import type { Reply, RequestContext } from './context.js';
import { handleForward } from './forward.js';
import { handleOpen } from './open.js';
import { handlePing } from './ping.js';
import { handlePush, pushTarget } from './push.js';
import { checkStepHeader, handleStep } from './step.js';
import { InvalidStepError } from '../../engine/errors.js';
import { RequestTooLargeError } from '../errors.js';
import { checkSpan } from './context.js';

export type { Reply, RequestContext } from './context.js';
export { msSince } from './step.js';

/** Answers one request; throws what the peer should be told (the caller turns it into an `error` reply). */
export function handleRequest(ctx: RequestContext, stream: StreamState, message: DecodedMessage): Reply | Promise<Reply> {
  const header = message.header;
  switch (header.type) {
    case 'open':
      return handleOpen(ctx, stream, header, message.tensor);
    case 'step':
      return handleStep(ctx, stream, header, message.tensor);
    case 'push':
      return handlePush(ctx, stream, header, message.tensor);
    case 'close':
      return handleClose(ctx, stream, header, message.tensor);
    case 'forward':
      return handleForward(ctx, stream, header, message.tensor);
    case 'ping':
      return handlePing(ctx, stream, header, message.tensor);
    default:
      throw new UnexpectedMessageError(header.type);
  }
}

/**
 * What the header alone decides, checked before the tensor is decoded (a step for an unknown session, of the wrong
 * width or over the step cap, a push its session's client did not allow, and a forward of another span, width or over its row cap, cost no decoding).
 */
export function checkRequestHeader(ctx: RequestContext, stream: StreamState, header: Message): void {
  if (header.type === 'step') checkStepHeader(ctx, stream, header);
  else if (header.type === 'push') pushTarget(ctx, stream, header);
  else if (header.type === 'forward') {
    checkSpan(ctx, header.spanStart, header.spanEnd);
    const [tokens, width] = header.tensor.shape;
    if (width !== ctx.span.hiddenSize) throw new InvalidStepError(`forward hidden states are ${width} wide, but this model's hidden size is ${ctx.span.hiddenSize}`);
    if (tokens > ctx.maxForwardTokens) throw new RequestTooLargeError(`forward of ${tokens} rows exceeds this server's limit of ${ctx.maxForwardTokens}`);
  }
}
