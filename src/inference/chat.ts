/**
 * A conversation over one session that keeps the KV cache across turns: each turn renders the whole conversation
 * with the model's chat template and feeds only the part the session does not hold yet. It starts a new session
 * when the template rewrote earlier turns (the rendered ids no longer extend what was fed), which includes the
 * case of a conversation that would overflow the context: its oldest turns are dropped (the system message stays),
 * and only a single message too long for the context is refused (ContextOverflowError).
 */
import { renderChat } from '../model/tokenizer/index.js';
import type { ChatMessage } from '../model/types.js';
import { DEFAULT_CHAT_CONTEXT } from './defaults.js';
import { ContextOverflowError } from './errors.js';
import { emptyStats, generate, type GenerateOptions, type GenerationEvent, type GenerationStream } from './generate.js';
import type { InferenceSession, LanguageModel } from './language-model.js';

export interface ChatOptions {
  /** Tokens one session holds (conversation + reply). Default 4096, and never more than the model's context. */
  readonly context?: number;
  /** A system message opening the conversation. */
  readonly system?: string;
  /** Extra variables for the chat template. */
  readonly templateVariables?: Record<string, unknown>;
}

export class Chat {
  readonly messages: ChatMessage[];
  readonly context: number;
  private opened = 0;
  private session: InferenceSession | undefined;
  /** Ids the session's cache holds, in order. */
  private fed: number[] = [];

  constructor(
    private readonly model: LanguageModel,
    private readonly options: ChatOptions = {},
  ) {
    // a session longer than the model's context is refused (REQUEST_TOO_LARGE)
    this.context = Math.min(options.context ?? DEFAULT_CHAT_CONTEXT, model.config.maxPositionEmbeddings);
    this.messages = options.system ? [{ role: 'system', content: options.system }] : [];
  }

  /** Sessions opened so far (1 + restarts). */
  get sessionsOpened(): number {
    return this.opened;
  }

  /**
   * Adds the user's message and streams the assistant's reply; the reply joins `messages` when the stream ends.
   * `stats.promptTokens` counts only the ids fed this turn.
   */
  reply(content: string, options: GenerateOptions): GenerationStream {
    const stats = emptyStats();
    const run = async function* (this: Chat): AsyncGenerator<GenerationEvent, void, undefined> {
      const { tokenizer } = this.model;
      this.messages.push({ role: 'user', content });
      const render = () => tokenizer.encode(renderChat(tokenizer, this.messages, { addGenerationPrompt: true, variables: this.options.templateVariables }), { addBos: false });
      let ids = render();
      // Too long for the context with its reply: forget the oldest turns (never the system message or this one).
      for (let first = this.messages[0]?.role === 'system' ? 1 : 0; ids.length + options.maxTokens > this.context && this.messages.length - first > 1; ) {
        this.messages.splice(first, this.messages[first + 1]?.role === 'assistant' ? 2 : 1);
        ids = render();
      }
      let shared = 0;
      while (shared < this.fed.length && shared < ids.length && this.fed[shared] === ids[shared]) shared++;
      if (ids.length + options.maxTokens > this.context) {
        this.messages.pop();
        throw new ContextOverflowError(ids.length + options.maxTokens, this.context);
      }
      if (!this.session || shared < this.fed.length) {
        await this.session?.close();
        this.session = undefined;
        this.fed = [];
        shared = 0;
        this.session = await this.model.openSession(this.context, { signal: options.signal });
        this.opened++;
      }
      this.fed.length = shared;
      const session = this.session;
      const fed = this.fed;
      const tracked: InferenceSession = {
        next: (next, stepOptions) => (fed.push(...next), session.next(next, stepOptions)),
        close: () => session.close(),
        ...(session.usage ? { usage: () => session.usage!() } : {}),
      };
      const inner = generate(tracked, tokenizer, ids.slice(shared), options);
      let text = '';
      try {
        for await (const event of inner) {
          text += event.text;
          yield event;
        }
      } finally {
        Object.assign(stats, inner.stats);
        this.messages.push({ role: 'assistant', content: text });
      }
    };
    return Object.assign(run.call(this), { stats });
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    this.fed = [];
    await session?.close();
  }
}
