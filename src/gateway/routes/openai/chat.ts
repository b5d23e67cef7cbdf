/** POST /v1/chat/completions: the messages rendered with the model's chat template (ChatML when it has none). */
import type { Hono } from 'hono';
import { renderChat } from '../../../model/tokenizer/index.js';
import type { ChatMessage } from '../../../model/types.js';
import type { GatewayContext, GatewayEnv } from '../../context.js';
import { readJson } from '../body.js';
import { CHAT_SHAPE, promptOptions, respond } from './respond.js';
import { chatCompletionSchema, refuseUnsupported, type ChatCompletionRequest } from './schema.js';

export function chatCompletionsRoute(app: Hono<GatewayEnv>, ctx: GatewayContext): void {
  app.post('/v1/chat/completions', async (c) => {
    const body = await readJson(c, chatCompletionSchema, refuseUnsupported);
    const host = ctx.models.get(body.model);
    await host.ready();
    const text = renderChat(host.tokenizer, messagesOf(body), { addGenerationPrompt: true });
    const prompt = host.tokenizer.encode(text, { addBos: false });
    return respond(c, ctx, CHAT_SHAPE, body, host, prompt, promptOptions(body, host, prompt.length, 'messages'));
  });
}

function messagesOf(body: ChatCompletionRequest): ChatMessage[] {
  return body.messages.map((m) => ({
    // "developer" is OpenAI's newer name for the system role
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : (m.content ?? []).map((part) => part.text).join(''),
  }));
}
