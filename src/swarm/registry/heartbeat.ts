/** The heartbeat protocol: a server signs its live load over the asker's nonce; the asker verifies the report. */
import { randomBytes } from 'node:crypto';
import type { Multiaddr } from '@multiformats/multiaddr';
import { RemoteError } from '../../errors.js';
import { checkSchema } from '../../wire/schema.js';
import { PROTOCOLS } from '../../wire/protocols.js';
import { MalformedRequestError, NotServingError, PeerRequestError } from '../errors.js';
import { RECORD_VERSION, signLoadReport, verifyLoadReport, type LoadReport, type VerifiedLoadReport } from '../records/index.js';
import { MAX_LOAD_REPORT_TTL_MS, deadline, type RegistryContext } from './context.js';
import { handleJson, requestJson } from './control.js';
import { heartbeatRequestSchema, parseReply, type HeartbeatRequest } from './messages.js';
import type { AnnounceInput } from './types.js';

/** Serves signed load reports from what we announce now (`announced()`), fresh for each request. */
export async function serveHeartbeat(ctx: RegistryContext, announced: () => AnnounceInput | undefined): Promise<void> {
  await handleJson(ctx.libp2p, PROTOCOLS.heartbeat, async (body) => {
    const request = checkSchema(heartbeatRequestSchema, body);
    if (!request.ok) throw new MalformedRequestError(request.reason);
    const info = announced();
    if (!info || (request.value.modelId !== undefined && request.value.modelId !== info.modelId)) throw new NotServingError(request.value.modelId);
    const now = Date.now();
    const report: LoadReport = {
      v: RECORD_VERSION,
      peerId: ctx.peerId,
      modelId: info.modelId,
      state: info.state ?? 'online',
      load: { activeSessions: info.load?.activeSessions ?? 0, queuedSteps: info.load?.queuedSteps ?? 0 },
      cacheTokensLeft: info.cacheTokensLeft,
      nonce: request.value.nonce,
      issuedAt: now,
      expiresAt: now + Math.min(ctx.settings.ttlMs, MAX_LOAD_REPORT_TTL_MS),
    };
    return signLoadReport(ctx.node.privateKey, report);
  });
}

/** Asks `target` for its live load over a fresh nonce. Throws PeerRequestError (an error reply's code in its cause). */
export async function requestHeartbeat(ctx: RegistryContext, target: string, addrs: Multiaddr[], modelId?: string): Promise<VerifiedLoadReport> {
  const protocol = PROTOCOLS.heartbeat;
  const nonce = randomBytes(16).toString('base64url');
  const body: HeartbeatRequest = { v: 1, nonce, ...(modelId !== undefined ? { modelId } : {}) };
  const reply = parseReply(await requestJson(ctx.libp2p, target, protocol, body, { signal: deadline(ctx.closed, ctx.settings.requestTimeoutMs), addrs }));
  if (!reply.ok) {
    const cause = reply.code !== undefined ? new RemoteError(reply.code, reply.message ?? '') : undefined;
    throw new PeerRequestError(target, protocol.id, reply.reason, { cause });
  }
  const result = await verifyLoadReport(reply.envelope, { peerId: target, nonce, modelId, clockSkewMs: ctx.settings.clockSkewMs });
  if (!result.ok) throw new PeerRequestError(target, protocol.id, `invalid load report: ${result.reason}`);
  return { record: result.record, envelope: result.envelope };
}
