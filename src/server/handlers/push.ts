/**
 * `push`: a step forwarded by another server, the upstream its client named at `open`. It is validated exactly as a
 * client's step is (header before tensor, the same width, size and position checks), then accepted at once with
 * `pushed` (so the pushing server can tell its client while this one computes), and run once that is written, in
 * order with the session's other steps; its stepResult (or error) goes to the client on the client's own stream, and
 * its output on to `next`, if given.
 * A push naming a session that does not exist here, belongs to another client, or whose client named another
 * upstream is FORWARD_REFUSED (the same answer for all three).
 */
import { errorMessage, type PushMessage } from '../../wire/messages.js';
import { ForwardRefusedError } from '../errors.js';
import type { ServedSession, StreamState } from '../session-table.js';
import type { Reply, RequestContext, RequestHandler } from './context.js';
import { checkStepFields, msSince, runStep } from './step.js';

/** The session a push may enter: the named client's, with the pushing peer as its upstream. */
export function pushTarget(ctx: RequestContext, stream: StreamState, m: PushMessage): ServedSession {
  const session = stream.peerId === undefined ? undefined : ctx.sessions.list().find((s) => s.clientId === m.sessionId && s.peerId === m.client && s.owner !== undefined);
  if (!session || ctx.upstreams.get(session) !== stream.peerId) throw new ForwardRefusedError(m.sessionId);
  checkStepFields(ctx, session, m);
  return session;
}

export const handlePush: RequestHandler<'push'> = (ctx, stream, m, hidden) => {
  const session = pushTarget(ctx, stream, m);
  const owner = session.owner!;
  const received = performance.now();
  // run once `pushed` is written; the stream reads its next request only after that, so pushes still run in order
  const run = () =>
    runStep(ctx, session, m.client, m, hidden!).then(
      (reply) => ctx.deliver(owner, { ...reply, header: { ...reply.header, serverMs: msSince(received) } as Reply['header'] }),
      (error: unknown) => ctx.deliver(owner, { header: errorMessage(error, { sessionId: m.sessionId, stepId: m.stepId }) }),
    );
  return { header: { type: 'pushed', sessionId: m.sessionId, stepId: m.stepId }, afterReply: run };
};
