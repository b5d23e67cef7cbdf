/** GET /metrics: Prometheus text format, with the swarm gauges refreshed from the models' latest views. */
import type { Hono } from 'hono';
import type { GatewayContext, GatewayEnv } from '../context.js';

export function metricsRoute(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  app.get('/metrics', async (c) => {
    const { metrics } = ctx;
    for (const view of ctx.models.views()) {
      const labels = { model: view.name };
      metrics.servers.set(labels, view.servers.filter((s) => s.state === 'online').length);
      metrics.blockCoverage.set(labels, view.numBlocks === 0 ? 0 : view.coverage.filter((n) => n > 0).length / view.numBlocks);
      metrics.modelAvailable.set(labels, view.status === 'available' ? 1 : 0);
    }
    return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType });
  });
}
