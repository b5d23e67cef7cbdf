/** One handler per block-protocol request; every other message type is UNEXPECTED_MESSAGE. */
import type { DecodedMessage } from '../../wire/messages.js';
import { UnexpectedMessageError } from '../errors.js';
import type { StreamState } from '../session-table.js';
import { handleClose } from './close.js';
import type { Reply, RequestContext } from './context.js';
import { handleForward } from './forward.js';
import { handleOpen } from './open.js';
import { handlePing } from './ping.js';
import { handleStep } from './step.js';

export type { Reply, RequestContext } from './context.js';

/** Answers one request; throws what the peer should be told (the caller turns it into an `error` reply). */
export function handleRequest(ctx: RequestContext, stream: StreamState, message: DecodedMessage): Reply | Promise<Reply> {
  const header = message.header;
  switch (header.type) {
    case 'open':
      return handleOpen(ctx, stream, header, message.tensor);
    case 'step':
      return handleStep(ctx, stream, header, message.tensor);
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
