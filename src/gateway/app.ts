/**
 * The gateway's HTTP app (Hono, web-standard Request/Response): middleware for metrics, body limits, API keys and
 * rate limits, then one module per API. Every error becomes the OpenAI error shape with its status; nothing a
 * client sends can make it answer 5xx except a real failure of ours.
 */
import { getConnInfo } from '@hono/node-server/conninfo';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { GatewayContext, GatewayEnv } from './context.js';
import { MAX_BODY_BYTES } from './defaults.js';
import { CorollaError } from '../errors.js';
import { errorBody, RateLimitedError } from './errors.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { farMeshRoutes } from './routes/far-mesh.js';
import { healthRoute } from './routes/health.js';
import { metricsRoute } from './routes/metrics.js';
import { chatCompletionsRoute } from './routes/openai/chat.js';
import { completionsRoute } from './routes/openai/completions.js';
import { modelsRoute } from './routes/openai/models.js';
import { usageRoutes } from './routes/usage.js';

class BodyTooLargeError extends CorollaError {
  override readonly name = 'BodyTooLargeError';
  /** REQUEST_TOO_LARGE alone would read as context_length_exceeded to OpenAI clients. */
  readonly openaiCode = 'request_too_large';
  constructor() {
    super('REQUEST_TOO_LARGE', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
  }
}

function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function createGatewayApp(ctx: GatewayContext): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.use(async (c, next) => {
    await next();
    const route = c.req.routePath === '/*' ? 'unmatched' : c.req.routePath;
    const status = String(c.res.status);
    ctx.metrics.httpRequests.inc({ route, method: c.req.method, status });
    if (c.res.status >= 400) ctx.metrics.httpErrors.inc({ route, status });
  });

  app.use('*', bodyLimit({ maxSize: MAX_BODY_BYTES, onError: () => { throw new BodyTooLargeError(); } }));

  // API keys and per-key request budgets: the generation APIs and the admin routes (not health, metrics, pages).
  const guarded = async (c: Context<GatewayEnv>, next: () => Promise<void>) => {
    const auth = await ctx.authenticate(c.req.header('authorization'), clientAddress(c));
    c.set('auth', auth);
    if (c.req.method === 'POST') await ctx.state.takeRequest(auth.subject, auth.limits);
    await next();
  };
  app.use('/v1/*', guarded);
  app.use('/inference/*', guarded);

  healthRoute(app, ctx);
  farMeshRoutes(app, ctx);
  modelsRoute(app, ctx);
  chatCompletionsRoute(app, ctx);
  completionsRoute(app, ctx);
  usageRoutes(app, ctx);
  metricsRoute(app, ctx);
  dashboardRoutes(app, ctx);

  app.notFound((c) => c.json({ error: { message: `no route for ${c.req.method} ${new URL(c.req.url).pathname.slice(0, 200)}`, type: 'not_found_error', param: null, code: 'not_found' } }, 404));
  app.onError((error, c) => {
    const { status, body } = errorBody(error);
    if (status >= 500) ctx.log.error('%s %s failed: %s', c.req.method, c.req.path, error instanceof Error ? (error.stack ?? error.message) : String(error));
    if (error instanceof RateLimitedError) c.header('Retry-After', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
    // the rest of an oversized body is never read: close the connection, or the client would reuse it mid-upload
    if (error instanceof BodyTooLargeError) c.header('Connection', 'close');
    return c.json(body, status as 400);
  });
  return app;
}
