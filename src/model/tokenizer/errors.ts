import { CorollaError } from '../../errors.js';

/** Tokenizer data is malformed: a truncated tokenizer.bin, an empty vocabulary, a merge naming unknown tokens. */
export class InvalidTokenizerError extends CorollaError {
  override readonly name = 'InvalidTokenizerError';
  constructor(what: string, reason: string, options: { cause?: unknown } = {}) {
    super('TOKENIZER_INVALID', `${what}: invalid tokenizer: ${reason}`, options);
  }
}

/** The tokenizer is well-formed but uses a kind or a pre-tokenizer we do not implement. */
export class UnsupportedTokenizerError extends CorollaError {
  override readonly name = 'UnsupportedTokenizerError';
  constructor(what: string, supported: readonly string[]) {
    super('TOKENIZER_UNSUPPORTED', `unsupported tokenizer ${what} (supported: ${supported.join(', ')})`);
  }
}

/**
 * A chat template failed to parse or render. `raised` is true when the template itself called
 * `raise_exception(...)` (for example "Conversation roles must alternate"), i.e. the messages were rejected.
 */
export class ChatTemplateError extends CorollaError {
  override readonly name = 'ChatTemplateError';
  readonly raised: boolean;
  constructor(reason: string, options: { cause?: unknown; raised?: boolean } = {}) {
    super(
      options.raised ? 'CHAT_TEMPLATE_RAISED' : 'CHAT_TEMPLATE_FAILED',
      options.raised ? `chat template rejected the messages: ${reason}` : `chat template failed: ${reason}`,
      { cause: options.cause },
    );
    this.raised = options.raised ?? false;
  }
}

/**
 * Thrown inside a template by its raise_exception(), so that it can be told apart from the renderer's own errors;
 * it never leaves chat-template.ts (it becomes a ChatTemplateError with `raised`).
 */
export class TemplateRaise extends Error {
  override readonly name = 'TemplateRaise';
}
