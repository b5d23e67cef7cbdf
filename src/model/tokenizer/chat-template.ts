import { Template } from '@huggingface/jinja';
import type { ChatMessage, Tokenizer } from '../types.js';
import { ChatTemplateError, TemplateRaise } from './errors.js';

/** ChatML, used when a model ships no chat template. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface ChatTemplateOptions {
  /** Append the assistant turn header so that the model answers next. */
  readonly addGenerationPrompt: boolean;
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** Further variables for the template (e.g. `tools`, `date_string`). */
  readonly variables?: Record<string, unknown>;
}

/**
 * @huggingface/jinja predeclares its own raise_exception (a plain Error) and refuses to redeclare it, so calls
 * in the source are renamed to ours, whose error is recognisable.
 */
const RAISE = '__corolla_raise_exception';

const compiled = new Map<string, Template>();

function compile(template: string): Template {
  let parsed = compiled.get(template);
  if (parsed === undefined) {
    try {
      parsed = new Template(template.replace(/\braise_exception\b/g, RAISE));
    } catch (error) {
      throw new ChatTemplateError(`cannot parse the template: ${messageOf(error)}`, { cause: error });
    }
    if (compiled.size >= 32) compiled.delete(compiled.keys().next().value!);
    compiled.set(template, parsed);
  }
  return parsed;
}

/**
 * Renders a Jinja chat template (Hugging Face semantics: `messages`, `add_generation_prompt`, `bos_token`,
 * `eos_token`, `raise_exception`). Throws `ChatTemplateError` when the template does not parse or fails to
 * render, with `raised` set when the template rejected the conversation through raise_exception().
 */
export function applyChatTemplate(template: string, messages: ChatMessage[], options: ChatTemplateOptions): string {
  const parsed = compile(template);
  try {
    return parsed.render({
      ...options.variables,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: options.addGenerationPrompt,
      bos_token: options.bosToken ?? '',
      eos_token: options.eosToken ?? '',
      [RAISE]: (message: unknown) => {
        throw new TemplateRaise(String(message));
      },
    });
  } catch (error) {
    const raised = findRaise(error);
    if (raised) throw new ChatTemplateError(raised.message, { cause: error, raised: true });
    throw new ChatTemplateError(`cannot render the template: ${messageOf(error)}`, { cause: error });
  }
}

/**
 * Renders a conversation with the tokenizer's own template, or ChatML when it has none. BOS/EOS strings come
 * from the tokenizer's vocabulary.
 */
export function renderChat(
  tokenizer: Tokenizer,
  messages: ChatMessage[],
  options: { addGenerationPrompt: boolean; variables?: Record<string, unknown> },
): string {
  const text = (id: number | undefined): string | undefined =>
    id === undefined ? undefined : tokenizer.idToToken(id)?.trim();
  return applyChatTemplate(tokenizer.chatTemplate ?? CHATML_TEMPLATE, messages, {
    addGenerationPrompt: options.addGenerationPrompt,
    bosToken: text(tokenizer.special.bos),
    eosToken: text(tokenizer.special.eos[0]),
    variables: options.variables,
  });
}

function findRaise(error: unknown): TemplateRaise | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof TemplateRaise) return e;
  }
  return undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
