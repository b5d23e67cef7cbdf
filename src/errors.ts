/**
 * The root of every error Corolla throws on purpose. Like viem's BaseError it carries a stable `code`,
 * a short message, optional details, and a cause chain, so callers can branch on `code` or `instanceof`
 * and humans see the whole story in one message.
 */
export class CorollaError extends Error {
  override readonly name: string = 'CorollaError';
  readonly code: string;
  readonly details?: string;

  constructor(code: string, message: string, options: { cause?: unknown; details?: string } = {}) {
    super(options.details ? `${message}\n  details: ${options.details}` : message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  /** Walks the cause chain and returns the first error matching `predicate`, if any. */
  walk(predicate: (error: unknown) => boolean): unknown {
    let current: unknown = this;
    while (current) {
      if (predicate(current)) return current;
      current = current instanceof Error ? current.cause : undefined;
    }
    return undefined;
  }
}

/** Serializable form of an error, for replies over the wire and JSON logs. */
export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof CorollaError) return { code: error.code, message: error.message };
  if (error instanceof Error) return { code: 'INTERNAL', message: error.message };
  return { code: 'INTERNAL', message: String(error) };
}
