/**
 * The control protocols' messages (announce, heartbeat): one JSON request, one JSON reply. They travel on
 * negotiated protocol ids, so they are strict: an unknown field is an error (a new field is a new minor version).
 */
import { ERROR_FIELDS } from '../../wire/messages.js';
import { checkSchema, strictObject, z } from '../../wire/schema.js';
import { RECORD_VERSION, modelIdField, nonceField } from '../records/index.js';

/** Ask for the current signed record (of `modelId`, when given). */
export const announceRequestSchema = strictObject({ v: z.literal(RECORD_VERSION), modelId: modelIdField.optional() });
/** Ask for a load report signed over `nonce` (for `modelId`, when given). */
export const heartbeatRequestSchema = strictObject({ v: z.literal(RECORD_VERSION), nonce: nonceField, modelId: modelIdField.optional() });

const successReplySchema = strictObject({ ok: z.literal(true), envelope: z.custom<unknown>((value) => value !== undefined) });
const errorReplySchema = strictObject({
  ok: z.literal(false),
  error: strictObject(ERROR_FIELDS),
});

export type AnnounceRequest = z.output<typeof announceRequestSchema>;
export type HeartbeatRequest = z.output<typeof heartbeatRequestSchema>;
export type SuccessReply = z.output<typeof successReplySchema>;
export type ErrorReply = z.output<typeof errorReplySchema>;
export type ControlReply = SuccessReply | ErrorReply;

/** Parses a reply: the envelope it carries, or one line saying what is wrong with it (or what the peer reported). */
export function parseReply(reply: unknown): { ok: true; envelope: unknown } | { ok: false; reason: string; code?: string; message?: string } {
  const ok = typeof reply === 'object' && reply !== null ? (reply as { ok?: unknown }).ok : undefined;
  if (ok === true) {
    const result = checkSchema(successReplySchema, reply);
    return result.ok ? { ok: true, envelope: result.value.envelope } : { ok: false, reason: `malformed reply: ${result.reason}` };
  }
  const result = checkSchema(errorReplySchema, reply);
  if (!result.ok) return { ok: false, reason: `malformed reply: ${result.reason}` };
  const { code, message } = result.value.error;
  return { ok: false, reason: `peer answered ${code}: ${message.slice(0, 200)}`, code, message };
}
