/** GET /health: healthy while at least one model is servable; otherwise 503 with the reasons. */
import type { Hono } from 'hono';
import type { GatewayContext, GatewayEnv } from '../context.js';
import { SERVICE_NAME } from '../defaults.js';

export function healthRoute(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  app.get('/health', (c) => {
    const views = ctx.models.views();
    const base = { service: SERVICE_NAME, version: ctx.settings.version };
    if (views.some((v) => v.status === 'available')) return c.json({ status: 'healthy', ...base });
    const reason = views.map((v) => `${v.name}: ${v.reason ?? v.status}`).join('; ');
    return c.json({ status: 'unhealthy', ...base, reason }, 503);
  });
}
