/** GET /v1/models and /v1/models/{model}: the models this gateway serves (servable or not right now). */
import type { Hono } from 'hono';
import type { GatewayContext, GatewayEnv } from '../../context.js';
import type { ModelView } from '../../model-host.js';

const started = Math.floor(Date.now() / 1000);

function modelObject(view: ModelView) {
  return { id: view.name, object: 'model', created: started, owned_by: 'corolla', status: view.status, context_length: view.contextLength || null };
}

export function modelsRoute(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  app.get('/v1/models', (c) => c.json({ object: 'list', data: ctx.models.views().map(modelObject) }));
  app.get('/v1/models/:model{.+}', (c) => c.json(modelObject(ctx.models.get(c.req.param('model')).snapshot())));
}
