/**
 * `open`: reserves maxLength tokens of KV cache for a new session on this stream (CACHE_FULL when it does not fit;
 * REQUEST_TOO_LARGE beyond the model's context), within the peer's quotas (QUOTA_EXCEEDED; see quotas.ts, which may
 * close other peers' borrowed sessions to make room). `upstream` names the one peer that may `push` steps into it.
 */
import { DuplicateSessionError } from '../../engine/errors.js';
import { TooManySessionsError } from '../errors.js';
import { checkSpan, type RequestHandler } from './context.js';

export const handleOpen: RequestHandler<'open'> = (ctx, stream, m) => {
  checkSpan(ctx, m.spanStart, m.spanEnd);
  if (stream.sessions.has(m.sessionId)) throw new DuplicateSessionError(m.sessionId);
  if (stream.sessions.size >= ctx.maxSessionsPerStream) throw new TooManySessionsError(ctx.maxSessionsPerStream);
  const borrowed = ctx.quotas.admitSession(stream, m.maxLength, ctx.sessions.list(), ctx.span.cacheTokensLeft());
  for (const session of borrowed) ctx.sessions.close(session, 'expired', 'preempted: its peer held more than its fair share of the KV cache and another peer needed room');
  const session = ctx.sessions.open({ clientId: m.sessionId, engineId: `s${stream.serial}-${m.sessionId}`, peerId: stream.peerId, ip: stream.ip, codec: m.codec, maxLength: m.maxLength, owner: stream });
  if (m.upstream !== undefined) ctx.upstreams.set(session, m.upstream);
  return { header: { type: 'opened', sessionId: m.sessionId, position: 0, cacheTokensLeft: ctx.span.cacheTokensLeft(), ...(ctx.forwarder ? { forwarding: true as const } : {}) } };
};
