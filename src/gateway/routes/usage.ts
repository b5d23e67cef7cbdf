/**
 * Admin routes: GET /v1/usage/{request_id} (a request's ledger record and its node contributions) and
 * POST /v1/admin/keys/{key_id}/revoke (seen at once by every gateway sharing the state). Both need an admin key.
 */
import type { Context, Hono } from 'hono';
import type { GatewayContext, GatewayEnv } from '../context.js';
import { ForbiddenError, UnknownRequestError } from '../errors.js';
import { formatFar } from '../ledger/money.js';
import type { UsageEntry } from '../types.js';

function requireAdmin(c: Context<GatewayEnv>): void {
  if (!c.get('auth').admin) throw new ForbiddenError('this route needs an admin API key');
}

/** A usage entry as JSON: costs as exact decimal FAR strings (and base units), times as ISO strings. */
export function usageJson({ request, contributions }: UsageEntry) {
  return {
    request: {
      id: request.id,
      api: request.api,
      api_key_id: request.apiKeyId,
      wallet: request.wallet,
      model: request.model,
      gateway_id: request.gatewayId,
      status: request.status,
      error: request.error,
      prompt_tokens: request.promptTokens,
      completion_tokens: request.completionTokens,
      cost_far: formatFar(request.costUnits),
      cost_units: request.costUnits.toString(),
      started_at: request.startedAt.toISOString(),
      first_token_at: request.firstTokenAt?.toISOString() ?? null,
      ended_at: request.endedAt?.toISOString() ?? null,
    },
    node_contributions: contributions.map((n) => ({
      peer_id: n.peerId,
      eth_address: n.ethAddress,
      block_start: n.blockStart,
      block_end: n.blockEnd,
      prompt_tokens: n.promptTokens,
      generated_tokens: n.generatedTokens,
      replayed_tokens: n.replayedTokens,
      failed: n.failed,
    })),
  };
}

export function usageRoutes(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  app.get('/v1/usage/:id', async (c) => {
    requireAdmin(c);
    const id = c.req.param('id');
    const entry = await ctx.ledger.get(id);
    if (!entry) throw new UnknownRequestError(id);
    return c.json(usageJson(entry));
  });

  app.post('/v1/admin/keys/:id/revoke', async (c) => {
    requireAdmin(c);
    const keyId = c.req.param('id');
    await ctx.state.revokeKey(keyId);
    ctx.log('API key %s revoked', keyId);
    return c.json({ id: keyId, revoked: true });
  });
}
