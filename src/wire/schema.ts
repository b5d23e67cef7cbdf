/**
 * The one schema mechanism for every Corolla message and record: zod 4 schemas built from the bounded field types
 * below, and `checkSchema`, which turns zod's first issue into one clear line ("open.maxLength must be in
 * 1..1000000, got number 0", "close: missing field \"sessionId\""). Field types carry their own wording, so a reason
 * reads the same whichever message or record it comes from. Every string, array and integer is bounded.
 */
import { z } from 'zod';

export { z };

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** An integer in `min..max` (both within the safe integer range). */
export function intIn(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  return z
    .number({ error: 'must be an integer' })
    .refine(Number.isInteger, { error: 'must be an integer', abort: true })
    .refine((value) => value >= min && value <= max, { error: `must be in ${min}..${max}` });
}

/** A finite number in `min..max`. */
export function numberIn(min: number, max: number) {
  return z
    .number({ error: 'must be a finite number' })
    .refine((value) => value >= min && value <= max, { error: `must be in ${min}..${max}` });
}

/** A string of `min..max` UTF-16 code units without control characters, optionally matching `pattern`. */
export function text(min: number, max: number, pattern?: RegExp) {
  const base = z
    .string({ error: 'must be a string' })
    .refine((value) => value.length >= min && value.length <= max, { error: `must be ${min}..${max} characters long`, abort: true })
    .refine((value) => !CONTROL_CHARACTERS.test(value), { error: 'contains control characters', abort: true });
  return pattern ? base.refine((value) => pattern.test(value), { error: 'has an invalid format' }) : base;
}

/** A string matching `pattern` (which bounds its length), described by `what` in reasons. */
export function token(pattern: RegExp, what: string) {
  return z.string({ error: 'must be a string' }).refine((value) => pattern.test(value), { error: `must be ${what}` });
}

/** One of `values`. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `must be one of ${values.join(', ')}` });
}

/** The schema's objects: an object whose keys are exactly the schema's (an unknown key is an error). */
export function strictObject<Shape extends z.ZodRawShape>(shape: Shape, what = 'an object') {
  return z.strictObject(shape, { error: `must be ${what}` });
}

/** An object that accepts and drops keys the schema does not know (signed records; see docs/protocols.md). */
export function openObject<Shape extends z.ZodRawShape>(shape: Shape, what = 'an object') {
  return z.object(shape, { error: `must be ${what}` });
}

/** A short description of a value for reasons: its type, and a bounded rendering of strings and numbers. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number') return `number ${value}`;
  return typeof value;
}

function quoteKey(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
}

function pathText(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): { present: boolean; value?: unknown } {
  let current = value;
  for (const part of path) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, part)) return { present: false };
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return { present: true, value: current };
}

/**
 * One line for a zod issue. `root` names the value (e.g. the message type) and prefixes every path; `input` is the
 * value that was parsed (the offending part is looked up by the issue's path, so parsing needs no `reportInput`,
 * which costs zod its fast path).
 */
export function formatIssue(issue: z.core.$ZodIssue, input: unknown, root = ''): string {
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const at = pathText(root, path);
    return `${at ? `${at}: ` : ''}unknown field ${quoteKey(issue.keys[0] ?? '')}`;
  }
  const found = valueAt(input, path);
  if (!found.present) {
    const at = pathText(root, path.slice(0, -1));
    return `${at ? `${at}: ` : ''}missing field ${quoteKey(String(path[path.length - 1]))}`;
  }
  const at = pathText(root, path);
  return `${at ? `${at} ` : ''}${issue.message}, got ${describeValue(found.value)}`;
}

export type SchemaResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Parses `value` with `schema`; on failure, the first issue as one line (see formatIssue). */
export function checkSchema<T>(schema: z.ZodType<T>, value: unknown, root = ''): SchemaResult<T> {
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, reason: formatIssue(result.error.issues[0]!, value, root) };
}
