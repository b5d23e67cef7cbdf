/** Reading a JSON body against a zod schema: every failure is an InvalidRequestError naming the field. */
import type { Context } from 'hono';
import type { z } from 'zod';
import { formatIssue } from '../../wire/schema.js';
import { InvalidRequestError } from '../errors.js';

/** `refuse` sees the raw object first (to refuse unsupported fields by name before type checks). */
export async function readJson<T>(c: Context, schema: z.ZodType<T>, refuse?: (raw: Record<string, unknown>) => void): Promise<T> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\b/i.test(type.trim())) throw new InvalidRequestError('the body must be JSON (Content-Type: application/json)', null);
  let body: unknown;
  try {
    body = JSON.parse(await c.req.text());
  } catch (error) {
    throw new InvalidRequestError(`the body is not valid JSON: ${(error as Error).message.slice(0, 200)}`, null);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidRequestError('the body must be a JSON object', null);
  refuse?.(body as Record<string, unknown>);
  const result = schema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const param = issue.path.length > 0 ? issue.path.map(String).join('.') : issue.code === 'unrecognized_keys' ? (issue.keys[0] ?? null) : null;
    throw new InvalidRequestError(formatIssue(issue, body), param);
  }
  return result.data;
}
