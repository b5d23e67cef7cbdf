/** The announce protocol: a server answers with its current signed record; a reader asks for it and verifies it. */
import type { Multiaddr } from '@multiformats/multiaddr';
import { checkSchema } from '../../wire/schema.js';
import { PROTOCOLS } from '../../wire/protocols.js';
import { MalformedRequestError, NotServingError } from '../errors.js';
import { verifyServerRecord, type ServerRecord, type VerifiedRecord, type VerifyResult } from '../records/index.js';
import { deadline, type RegistryContext } from './context.js';
import { handleJson, requestJson } from './control.js';
import { announceRequestSchema, parseReply, type AnnounceRequest } from './messages.js';

/** Serves our current record (only to askers that want our model, when they name one). */
export async function serveAnnounce(ctx: RegistryContext, current: () => VerifiedRecord | undefined): Promise<void> {
  await handleJson(ctx.libp2p, PROTOCOLS.announce, async (body) => {
    const request = checkSchema(announceRequestSchema, body);
    if (!request.ok) throw new MalformedRequestError(request.reason);
    const record = current();
    if (!record || (request.value.modelId !== undefined && request.value.modelId !== record.record.modelId)) {
      throw new NotServingError(request.value.modelId);
    }
    return record.envelope;
  });
}

/**
 * Asks `target` for its record and verifies it. Replies that are errors or invalid come back as reasons; a failed
 * exchange (dial, stream, timeout) throws PeerRequestError.
 */
export async function requestRecord(
  ctx: RegistryContext,
  target: string,
  addrs: Multiaddr[],
  expect: { modelId?: string; numBlocks?: number } = {},
): Promise<VerifyResult<ServerRecord>> {
  const body: AnnounceRequest = { v: 1, ...(expect.modelId !== undefined ? { modelId: expect.modelId } : {}) };
  const reply = parseReply(
    await requestJson(ctx.libp2p, target, PROTOCOLS.announce, body, { signal: deadline(ctx.closed, ctx.settings.requestTimeoutMs), addrs }),
  );
  if (!reply.ok) return { ok: false, reason: reply.reason };
  return verifyServerRecord(reply.envelope, { peerId: target, modelId: expect.modelId, numBlocks: expect.numBlocks, clockSkewMs: ctx.settings.clockSkewMs });
}
