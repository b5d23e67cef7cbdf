/** `close`: frees an open session, or acknowledges one the server already expired; other ids are UNKNOWN_SESSION. */
import { UnknownSessionError } from '../../engine/errors.js';
import type { RequestHandler } from './context.js';

export const handleClose: RequestHandler<'close'> = (ctx, stream, m) => {
  const session = stream.sessions.get(m.sessionId);
  if (session) ctx.sessions.close(session, 'closed');
  else if (!stream.expired.has(m.sessionId)) throw new UnknownSessionError(m.sessionId);
  stream.expired.delete(m.sessionId);
  return { header: { type: 'closed', sessionId: m.sessionId } };
};
