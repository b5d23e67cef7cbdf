/**
 * The gateway's web pages and their data:
 *   GET /                    → redirect to /dashboard
 *   GET /dashboard, /chat    → the pages (static HTML, CSS and ES modules from ../public; no build step)
 *   GET /static/*            → their assets
 *   GET /dashboard/snapshot  → the swarm as the dashboard sees it, once (JSON)
 *   GET /dashboard/feed      → the same as SSE: `event: snapshot` at once, then every `dashboardPushMs`
 * None of these needs an API key, so the snapshot leaves out API key ids and wallets.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { GatewayContext, GatewayEnv } from '../context.js';
import { DASHBOARD_RECENT_REQUESTS } from '../defaults.js';
import { formatFar } from '../ledger/money.js';
import type { ModelView } from '../model-host.js';
import type { LiveSession, RequestApi, RequestRecord, RequestStatus } from '../types.js';

/** A finished or running request as the dashboard lists it (no API key id, no wallet). */
export interface RecentRequest {
  readonly id: string;
  readonly model: string;
  readonly api: RequestApi;
  readonly status: RequestStatus;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Exact decimal FAR. */
  readonly costFar: string;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  readonly endedAt: number | null;
}

export interface DashboardSnapshot {
  readonly gateway: { readonly id: string; readonly version: string; readonly price_per_token_far: string };
  readonly models: ModelView[];
  readonly sessions: LiveSession[];
  /** The newest requests first. */
  readonly recent: RecentRequest[];
  /** When the snapshot was taken (epoch ms), so ages are computed against the gateway's clock. */
  readonly time: number;
}

/**
 * The pages live in src/gateway/public. From src/ (tsx) that is ../public; the compiled package runs from dist/ and
 * ships src/ beside it (package.json "files"), so from dist/gateway/routes it is ../../../src/gateway/public.
 */
function publicDir(): string {
  const candidates = ['../public/', '../../../src/gateway/public/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const found = candidates.find((dir) => fs.existsSync(`${dir}dashboard.html`));
  if (!found) throw new Error(`the gateway's web pages are missing (looked in ${candidates.join(' and ')})`);
  return found;
}

function recentRequest(r: RequestRecord): RecentRequest {
  return {
    id: r.id,
    model: r.model,
    api: r.api,
    status: r.status,
    promptTokens: r.promptTokens,
    completionTokens: r.completionTokens,
    costFar: formatFar(r.costUnits),
    startedAt: r.startedAt.getTime(),
    endedAt: r.endedAt?.getTime() ?? null,
  };
}

export async function dashboardSnapshot(ctx: GatewayContext): Promise<DashboardSnapshot> {
  const [sessions, recent] = await Promise.all([ctx.state.sessions(), ctx.ledger.list({ newestFirst: true, limit: DASHBOARD_RECENT_REQUESTS })]);
  return {
    gateway: { id: ctx.settings.gatewayId, version: ctx.settings.version, price_per_token_far: ctx.settings.pricePerTokenFar },
    models: ctx.models.views(),
    sessions,
    recent: recent.map(({ request }) => recentRequest(request)),
    time: Date.now(),
  };
}

/**
 * Builds one snapshot per interval and hands it to every connected dashboard, so the ledger and the shared state are
 * read once per tick however many dashboards are open. The timer runs only while someone listens.
 */
class SnapshotFeed {
  private readonly listeners = new Set<(data: string) => void>();
  private timer?: ReturnType<typeof setInterval>;
  private building = false;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly intervalMs: number,
  ) {}

  /** Serialized once here; every bigint was formatted before, so JSON.stringify never meets one. */
  async build(): Promise<string> {
    return JSON.stringify(await dashboardSnapshot(this.ctx));
  }

  /** Calls `listener` with each pushed snapshot until the returned function is called. */
  subscribe(listener: (data: string) => void): () => void {
    this.listeners.add(listener);
    this.timer ??= setInterval(() => void this.push(), this.intervalMs);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size > 0) return;
      clearInterval(this.timer);
      this.timer = undefined;
    };
  }

  private async push(): Promise<void> {
    // a slow ledger must not pile builds up; the next tick brings fresher data anyway
    if (this.building) return;
    this.building = true;
    try {
      const data = await this.build();
      for (const listener of this.listeners) listener(data);
    } catch (error) {
      this.ctx.log.error('dashboard snapshot failed: %s', (error as Error).message);
    } finally {
      this.building = false;
    }
  }
}

export function dashboardRoutes(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  const root = publicDir();
  const noCache = (_path: string, c: Context) => {
    c.header('Cache-Control', 'no-cache');
  };
  const page = (file: string) => serveStatic<GatewayEnv>({ root, path: file, onFound: noCache });
  const feed = new SnapshotFeed(ctx, ctx.settings.dashboardPushMs);

  app.get('/', (c) => c.redirect('/dashboard'));
  app.get('/dashboard', page('dashboard.html'));
  app.get('/chat', page('chat.html'));
  // serveStatic refuses `..`, encoded separators and backslashes; anything not under `root` falls through to a 404
  app.get('/static/*', serveStatic<GatewayEnv>({ root, rewriteRequestPath: (path) => path.slice('/static'.length), onFound: noCache }));

  app.get('/dashboard/snapshot', async (c) => c.json(await dashboardSnapshot(ctx)));

  app.get('/dashboard/feed', (c) =>
    streamSSE(c, async (stream) => {
      const closed = new Promise<void>((resolve) => {
        stream.onAbort(resolve);
        c.req.raw.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      let writing = false;
      const send = (data: string) => {
        // a client still reading the previous snapshot skips this one rather than queueing them up
        if (writing || stream.aborted || stream.closed) return;
        writing = true;
        stream
          .writeSSE({ event: 'snapshot', data })
          .catch(() => {})
          .finally(() => {
            writing = false;
          });
      };
      try {
        send(await feed.build());
      } catch (error) {
        ctx.log.error('dashboard snapshot failed: %s', (error as Error).message);
        return;
      }
      const unsubscribe = feed.subscribe(send);
      await closed;
      unsubscribe();
    }),
  );
}
