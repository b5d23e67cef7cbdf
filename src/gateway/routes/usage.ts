/**
 * Admin routes: GET /v1/usage/{request_id} (a request's ledger record and its node contributions) and
 * POST /v1/admin/keys/{key_id}/revoke (seen at once by every gateway sharing the state). Both need an admin key.
 */
import type { Context, Hono } from 'hono';
import type { GatewayContext, GatewayEnv } from '../context.js';
import { ForbiddenError, UnknownRequestError } from '../errors.js';
import { usageEntryJson } from '../ledger/export.js';

function requireAdmin(c: Context<GatewayEnv>): void {
  if (!c.get('auth').admin) throw new ForbiddenError('this route needs an admin API key');
}

export function usageRoutes(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  app.get('/v1/usage/:id', async (c) => {
    requireAdmin(c);
    const id = c.req.param('id');
    const entry = await ctx.ledger.get(id);
    if (!entry) throw new UnknownRequestError(id);
    return c.json(usageEntryJson(entry));
  });

  app.post('/v1/admin/keys/:id/revoke', async (c) => {
    requireAdmin(c);
    const keyId = c.req.param('id');
    await ctx.state.revokeKey(keyId);
    ctx.log('API key %s revoked', keyId);
    return c.json({ id: keyId, revoked: true });
  });
}
