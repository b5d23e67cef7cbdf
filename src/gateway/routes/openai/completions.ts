/** POST /v1/completions: a raw text prompt, encoded with the tokenizer's BOS setting. */
import type { Hono } from 'hono';
import { promptIds } from '../../../inference/generate.js';
import type { GatewayContext, GatewayEnv } from '../../context.js';
import { readJson } from '../body.js';
import { promptOptions, respond, TEXT_SHAPE } from './respond.js';
import { completionSchema, refuseUnsupported } from './schema.js';

/** OpenAI's default max_tokens for /v1/completions. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

export function completionsRoute(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  app.post('/v1/completions', async (c) => {
    const body = await readJson(c, completionSchema, refuseUnsupported);
    const host = ctx.models.get(body.model);
    await host.ready();
    const prompt = promptIds(host.tokenizer, typeof body.prompt === 'string' ? body.prompt : body.prompt[0]!);
    return respond(c, ctx, TEXT_SHAPE, body, host, prompt, promptOptions(body, host, prompt.length, 'prompt', COMPLETIONS_DEFAULT_MAX_TOKENS));
  });
}
