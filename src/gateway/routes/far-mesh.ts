/**
 * The Far Mesh Coordinator's API, with its field names, so its clients work unchanged: GET /mesh/status,
 * GET /models (plus block coverage), and POST /inference/generate streaming
 * `data: {"token","request_id","tokens_generated","cost_far"}` per token, then `data: {"done": true, …}`.
 * Prices and costs are decimal strings of FAR, computed exactly from integer base units.
 */
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { intIn, numberIn, text } from '../../wire/schema.js';
import type { GatewayContext, GatewayEnv } from '../context.js';
import { MAX_ID_CHARS, MAX_PROMPT_CHARS } from '../defaults.js';
import { errorBody, InvalidRequestError } from '../errors.js';
import { formatFar } from '../ledger/money.js';
import type { ModelView } from '../model-host.js';
import { readJson } from './body.js';
import { SseQueue } from './sse-queue.js';
import { promptIds } from '../../inference/generate.js';

const FAR_MESH_DEFAULTS = { maxTokens: 512, temperature: 0.7, topP: 0.9 } as const;

const generateSchema = z.object(
  {
    prompt: z.string({ error: 'must be a string' }).max(MAX_PROMPT_CHARS, { error: `must be at most ${MAX_PROMPT_CHARS} characters` }),
    max_tokens: intIn(1, 1_000_000).optional(),
    temperature: numberIn(0, 2).optional(),
    top_p: numberIn(0, 1).optional(),
    user_wallet: text(1, MAX_ID_CHARS).nullable().optional(),
    request_id: text(1, MAX_ID_CHARS, /^[A-Za-z0-9_.:\-]+$/).nullable().optional(),
    model_id: text(1, 256).nullable().optional(),
  },
  { error: 'must be an object' },
);

function modelEntry(view: ModelView, price: string) {
  return {
    model_id: view.name,
    active_nodes: view.servers.filter((s) => s.state === 'online').length,
    price_per_token_far: price,
    status: view.status,
    swarm_model_id: view.modelId,
    num_blocks: view.numBlocks,
    context_length: view.contextLength,
    coverage: view.coverage,
    reason: view.reason,
  };
}

export function farMeshRoutes(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  const price = ctx.settings.pricePerTokenFar;

  app.get('/mesh/status', async (c) => {
    const views = ctx.models.views();
    const main = views[0]!;
    const nodes = new Set(views.flatMap((v) => v.servers.filter((s) => s.state === 'online').map((s) => s.peerId)));
    const sessions = await ctx.state.sessions();
    const available = views.filter((v) => v.status === 'available').length;
    return c.json({
      model_id: main.name,
      active_nodes: nodes.size,
      active_sessions: sessions.length,
      price_per_token_far: price,
      status: available === views.length ? 'connected' : available > 0 ? 'degraded' : 'disconnected',
    });
  });

  app.get('/models', (c) => c.json({ models: ctx.models.views().map((v) => modelEntry(v, price)) }));

  app.post('/inference/generate', async (c) => {
    const body = await readJson(c, generateSchema);
    const host = ctx.models.get(body.model_id ?? undefined);
    await host.ready();
    const prompt = promptIds(host.tokenizer, body.prompt);
    const context = host.config.maxPositionEmbeddings;
    const room = context - prompt.length;
    if (room < 1) throw new InvalidRequestError(`the prompt has ${prompt.length} tokens; this model's context is ${context}`, 'prompt', { openaiCode: 'context_length_exceeded' });
    const running = await ctx.generations.start({
      id: body.request_id ?? undefined,
      api: 'far-mesh',
      host,
      prompt,
      // max_tokens beyond the room left is clipped (Far Mesh clients send a fixed 512)
      options: { maxTokens: Math.min(body.max_tokens ?? FAR_MESH_DEFAULTS.maxTokens, room), temperature: body.temperature ?? FAR_MESH_DEFAULTS.temperature, topP: body.top_p ?? FAR_MESH_DEFAULTS.topP },
      auth: c.get('auth'),
      wallet: body.user_wallet ?? null,
      signal: c.req.raw.signal,
    });
    const requestId = running.id;
    c.header('x-request-id', requestId);
    return streamSSE(c, async (stream) => {
      const events = new SseQueue(stream);
      let generated = 0;
      let cost = 0n;
      try {
        for await (const event of running.events) {
          generated = event.generated;
          cost = event.costUnits;
          await events.send(JSON.stringify({ token: event.text, request_id: requestId, tokens_generated: event.generated, cost_far: formatFar(event.costUnits) }));
        }
        const outcome = running.outcome();
        await events.send(JSON.stringify({ done: true, request_id: requestId, tokens_generated: generated, cost_far: formatFar(cost), finish_reason: outcome.finishReason }));
      } catch (error) {
        const { status, body: errorJson } = errorBody(error);
        ctx.metrics.httpErrors.inc({ route: '/inference/generate', status: String(status) });
        await events.send(JSON.stringify({ ...errorJson, request_id: requestId }));
        await events.send(JSON.stringify({ done: true, request_id: requestId, tokens_generated: generated, cost_far: formatFar(cost), finish_reason: 'error' }));
      }
      await events.flush();
    });
  });
}
