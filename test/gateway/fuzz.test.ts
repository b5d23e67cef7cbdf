/**
 * A seeded fuzzer of malformed requests against every POST route and some odd GETs: bad JSON, wrong content types,
 * wrong types and out-of-range values per field, huge numbers, unknown models, nested garbage, very long strings,
 * oversized and empty bodies, arrays instead of objects, unicode junk. Every answer must be a 4xx in the OpenAI error
 * shape (never a 5xx, never a hang), and the gateway must still serve a correct request afterwards.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAX_BODY_BYTES } from '../../src/gateway/defaults.js';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { seededRandom } from '../support/random.js';
import { expectErrorShape } from '../support/http.js';

const SEED = 0xc0a011a;
const REQUEST_TIMEOUT_MS = 10_000;

interface Case {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array | (() => ReadableStream<Uint8Array>);
  /** A precise status when the case calls for one; any 4xx otherwise. */
  readonly status?: number;
}

const JSON_TYPE = { 'content-type': 'application/json' };
const random = seededRandom(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (n: number) => Math.floor(random() * n);

const JUNK_CHARS = ['\u0000', '\ud800', '\udfff', '\ufffe', '\u202e', '🙂', 'é', '\\', '"', '\n', '{', '}', '[', ']', ',', ':', 'null', '\u2028', '\t', 'ß', '𝕏', '\u0007'];
function junk(length: number): string {
  let s = '';
  while (s.length < length) s += random() < 0.5 ? pick(JUNK_CHARS) : String.fromCharCode(32 + int(95));
  return s;
}

/** Random JSON values, nested up to `depth`. */
function garbage(depth: number): unknown {
  const kind = depth <= 0 ? int(5) : int(7);
  switch (kind) {
    case 0: return null;
    case 1: return random() < 0.5;
    case 2: return pick([0, -1, 1e308, -1e308, 2 ** 53 + 1, 0.5, -0.25, 123456789]);
    case 3: return junk(int(20));
    case 4: return pick(['NaN', 'Infinity', '-1', '1e999', '', '[]', '{}']);
    case 5: return Array.from({ length: int(4) }, () => garbage(depth - 1));
    default: return Object.fromEntries(Array.from({ length: int(4) }, () => [junk(1 + int(8)), garbage(depth - 1)]));
  }
}

/** Without lone surrogates (which URLs cannot carry). */
const wellFormed = (s: string) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '?');

const deepArray = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const deepObject = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

/** Numbers no numeric field accepts. */
const BAD_NUMBERS: unknown[] = ['1', 'NaN', 'Infinity', true, [1], { value: 1 }, 1e308, -1e308, 2 ** 53 + 1, -(2 ** 53) - 1];
/** Raw JSON number texts no field accepts (JSON.parse turns 1e999 into Infinity). */
const RAW_NUMBERS = ['1e999', '-1e999', '1e308', '9007199254740993'];

/** Invalid values per field: each makes the request a 4xx on its own. */
const CHAT_FIELDS: Record<string, unknown[]> = {
  model: [123, null, true, [], {}, '', 'x'.repeat(300), ['stories260K']],
  messages: [[], 'hi', [{}], [null], [{ role: 'tool', content: 'x' }], [{ role: 'user', content: 5 }], [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }], [{ role: 'user', content: [{ type: 'text' }] }], Array.from({ length: 1100 }, () => ({ role: 'user', content: 'a' })), { role: 'user', content: 'x' }, [{ role: 'USER', content: 'x' }], [{ role: 'user', content: 'x', name: '' }]],
  max_tokens: [...BAD_NUMBERS, -1, 0, 1.5, 1_000_001],
  max_completion_tokens: [...BAD_NUMBERS, -1, 0, 2.5],
  temperature: [...BAD_NUMBERS, -1, 2.01, -0.5],
  top_p: [...BAD_NUMBERS, -1, 1.5],
  top_k: [...BAD_NUMBERS, -1, 0.5],
  min_p: [...BAD_NUMBERS, -0.1, 1.1],
  repetition_penalty: [...BAD_NUMBERS, 0, -1, 11],
  frequency_penalty: [...BAD_NUMBERS, -3, 2.5],
  presence_penalty: [...BAD_NUMBERS, 3, -2.5],
  seed: [...BAD_NUMBERS, 0.5],
  n: [2, 1e308, '2', 0, -1, 1.5],
  stop: ['', 5, [1], ['a', 'b', 'c', 'd', 'e'], 'x'.repeat(300), {}, [''], [null]],
  stream: ['true', 1, {}, []],
  stream_options: ['x', 5, [], { include_usage: 'yes' }, { include_usage: 1 }],
  user: [123, 'x'.repeat(200), {}, []],
  logprobs: [true, 'yes', 21, -1, {}],
  tools: [[{ type: 'function', function: { name: 'f' } }], 'x', 5],
  tool_choice: ['auto', { type: 'function' }],
  response_format: [{ type: 'json_object' }, { type: 'json_schema', json_schema: {} }, 'json'],
  logit_bias: [{ '1': 5 }],
  top_logprobs: [3],
};
const COMPLETION_FIELDS: Record<string, unknown[]> = {
  model: CHAT_FIELDS.model!,
  prompt: [5, null, ['a', 'b'], [], {}, [1, 2, 3], [[1]], true],
  max_tokens: CHAT_FIELDS.max_tokens!,
  temperature: CHAT_FIELDS.temperature!,
  top_p: CHAT_FIELDS.top_p!,
  seed: CHAT_FIELDS.seed!,
  stop: CHAT_FIELDS.stop!,
  stream: CHAT_FIELDS.stream!,
  echo: [true, 'yes', 1],
  suffix: ['x', 5],
  best_of: [2, '2', 0],
  logprobs: [1, true, 'x'],
  n: CHAT_FIELDS.n!,
};
const FAR_MESH_FIELDS: Record<string, unknown[]> = {
  prompt: [5, null, [], {}, true, ['a']],
  max_tokens: [...BAD_NUMBERS, -1, 0, 1.5],
  temperature: [...BAD_NUMBERS, -1, 3],
  top_p: [...BAD_NUMBERS, -1, 2],
  user_wallet: [123, '', 'x'.repeat(200), {}, []],
  request_id: [123, '', 'has space', 'slash/id', 'é', '🙂', '\u0000', 'x'.repeat(200), {}, [], true],
  model_id: [5, '', 'x'.repeat(300), {}, []],
};

interface Route {
  readonly path: string;
  readonly base: Record<string, unknown>;
  readonly fields: Record<string, unknown[]>;
  /** The fields naming the model (an unknown one is a 404). */
  readonly modelField: string;
  readonly required: readonly string[];
}

const ROUTES: Route[] = [
  { path: '/v1/chat/completions', base: { model: TEST_MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 }, fields: CHAT_FIELDS, modelField: 'model', required: ['model', 'messages'] },
  { path: '/v1/completions', base: { model: TEST_MODEL, prompt: 'hi', max_tokens: 1 }, fields: COMPLETION_FIELDS, modelField: 'model', required: ['model', 'prompt'] },
  { path: '/inference/generate', base: { prompt: 'hi', max_tokens: 1 }, fields: FAR_MESH_FIELDS, modelField: 'model_id', required: ['prompt'] },
];

function cases(): Case[] {
  const out: Case[] = [];
  const post = (route: Route, name: string, body: Case['body'], extra: Partial<Case> = {}) => out.push({ name: `${route.path} ${name}`, method: 'POST', path: route.path, headers: JSON_TYPE, body, ...extra });
  for (const route of ROUTES) {
    const valid = JSON.stringify(route.base);
    // every invalid value of every field, on an otherwise valid body
    for (const [field, values] of Object.entries(route.fields)) {
      for (const value of values) post(route, `${field}=${JSON.stringify(value)?.slice(0, 40)}`, JSON.stringify({ ...route.base, [field]: value }));
    }
    for (const field of Object.keys(route.fields)) {
      for (const raw of RAW_NUMBERS) {
        if (['model', 'messages', 'prompt', 'model_id', 'user', 'user_wallet', 'request_id', 'stop', 'tools', 'tool_choice', 'response_format', 'logit_bias', 'stream_options'].includes(field)) continue;
        if ((field === 'seed' || field === 'n' || field === 'best_of') && raw === '1e308') continue; // n/best_of 1e308: covered above
        post(route, `${field}=${raw} (raw)`, `${valid.slice(0, -1)},"${field}":${raw}}`);
      }
    }
    for (const field of route.required) {
      const { [field]: _, ...rest } = route.base;
      post(route, `without ${field}`, JSON.stringify(rest), { status: 400 });
    }
    // unknown models
    for (let i = 0; i < 8; i++) post(route, 'unknown model', JSON.stringify({ ...route.base, [route.modelField]: `${junk(1 + int(30))}-${i}` }));
    post(route, 'unknown model (plain)', JSON.stringify({ ...route.base, [route.modelField]: 'gpt-4o' }), { status: 404 });
    // bad JSON
    for (let i = 0; i < 10; i++) post(route, 'truncated JSON', valid.slice(0, 1 + int(valid.length - 2)), { status: 400 });
    for (let i = 0; i < 6; i++) post(route, 'junk text', junk(1 + int(200)), { status: 400 });
    for (const text of ['{', '}', '{"model":}', "{'model':'x'}", 'nul', 'undefined', '{"a":1,}', valid + 'x', valid + valid, 'NaN', '"string"', '12', 'true', 'null']) post(route, `bad JSON ${JSON.stringify(text).slice(0, 30)}`, text, { status: 400 });
    post(route, 'invalid UTF-8', new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0xc3, 0x28, 0x7d]), { status: 400 });
    // wrong content types
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', '', 'json', 'application/jsonx']) {
      post(route, `content-type ${JSON.stringify(type)}`, valid, { headers: type ? { 'content-type': type } : {}, status: 400 });
    }
    post(route, 'no content-type', valid, { headers: {}, status: 400 });
    // empty bodies, arrays and scalars instead of objects, nested garbage
    post(route, 'empty body', '', { status: 400 });
    post(route, 'whitespace body', '   \n', { status: 400 });
    post(route, 'array body', JSON.stringify([route.base]), { status: 400 });
    post(route, 'empty object', '{}', { status: 400 });
    for (let i = 0; i < 10; i++) post(route, 'nested garbage body', JSON.stringify(garbage(4)) ?? 'null');
    for (let i = 0; i < 6; i++) {
      const field = pick(Object.keys(route.fields).filter((f) => !['stop', 'user', 'user_wallet', 'logprobs', 'n', 'seed', 'frequency_penalty', 'presence_penalty'].includes(f)));
      post(route, `nested garbage in ${field}`, JSON.stringify({ ...route.base, [field]: [garbage(3), { x: garbage(3) }] }));
    }
    post(route, 'deep array', deepArray(20_000), { status: 400 });
    post(route, 'deep object', deepObject(20_000), { status: 400 });
    post(route, `deep value in ${route.modelField}`, `${valid.slice(0, -1)},"${route.modelField}":${deepArray(5_000)}}`, { status: 400 });
    // very long strings (under the body limit)
    const promptField = route.path === '/v1/chat/completions' ? 'messages' : 'prompt';
    const long = 'a'.repeat(600 * 1024);
    post(route, 'prompt past the character limit', JSON.stringify({ ...route.base, [promptField]: promptField === 'messages' ? [{ role: 'user', content: long }] : long }), { status: 400 });
    post(route, 'long unknown key', JSON.stringify({ [junk(10_000)]: 1 }), { status: 400 });
    // oversized bodies: declared, and streamed without a length
    post(route, 'body over the limit', JSON.stringify({ ...route.base, padding: 'x'.repeat(MAX_BODY_BYTES) }), { status: 413 });
    post(route, 'streamed body over the limit', () => streamOf(MAX_BODY_BYTES + 64 * 1024), { status: 413 });
  }
  // odd GETs and methods
  const odd: [string, string, number?][] = [
    ['GET', '/v1/models/no-such-model', 404],
    ['GET', `/v1/models/${encodeURIComponent(wellFormed(junk(50)))}`],
    ['GET', '/v1/models/%ZZ'],
    ['GET', '/v1/models/%E0%A4%A'],
    ['GET', '/v1/usage/some-id', 403],
    ['GET', '/v1/usage/%ZZ'],
    ['GET', `/v1/usage/${'x'.repeat(5000)}`],
    ['GET', '/inference/generate', 404],
    ['GET', '/v1/chat/completions', 404],
    ['GET', '/nope', 404],
    ['GET', `/${'a/'.repeat(2000)}`, 404],
    ['GET', '/%2e%2e/%2e%2e/etc/passwd', 404],
    ['GET', '/health/../../etc/passwd', 404],
    ['GET', '/v1/models/stories260K/extra/parts/%00', 404],
    ['PUT', '/v1/completions', 404],
    ['DELETE', '/v1/chat/completions', 404],
    ['PATCH', '/inference/generate', 404],
    ['POST', '/health', 404],
    ['POST', '/metrics', 404],
    ['POST', '/v1/models', 404],
    ['POST', '/v1/admin/keys/x/revoke', 403],
  ];
  for (const [method, path, status] of odd) out.push({ name: `${method} ${path.slice(0, 60)}`, method, path, ...(status ? { status } : {}) });
  return out;
}

function streamOf(bytes: number): ReadableStream<Uint8Array> {
  const chunk = new TextEncoder().encode('{"prompt":"' + 'x'.repeat(64 * 1024 - 11));
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      controller.enqueue(chunk);
      sent += chunk.length;
    },
  });
}

let testGateway: TestGateway;

beforeAll(async () => {
  testGateway = await startTestGateway();
});

afterAll(async () => {
  await testGateway?.close();
});

async function send(c: Case): Promise<{ status: number; text: string }> {
  const body = typeof c.body === 'function' ? c.body() : c.body;
  const response = await fetch(`${testGateway.url}${c.path}`, {
    method: c.method,
    headers: c.headers ?? {},
    ...(body !== undefined ? { body, ...(body instanceof ReadableStream ? { duplex: 'half' } : {}) } : {}),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  } as RequestInit);
  return { status: response.status, text: await response.text() };
}

const correct = { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 };

it('answers every malformed request with a 4xx in the error shape, and still serves afterwards', async () => {
  const before = await send({ name: 'correct', method: 'POST', path: '/v1/completions', headers: JSON_TYPE, body: JSON.stringify(correct) });
  expect(before.status).toBe(200);

  const all = cases();
  expect(all.length).toBeGreaterThan(300);
  const failures: string[] = [];
  const started = performance.now();
  // a few at a time, as clients would
  for (let i = 0; i < all.length; i += 4) {
    await Promise.all(
      all.slice(i, i + 4).map(async (c) => {
        let result: { status: number; text: string };
        try {
          result = await send(c);
        } catch (error) {
          failures.push(`${c.name}: ${(error as Error).name} ${(error as Error).message} ${String((error as Error).cause)}`);
          return;
        }
        const { status, text } = result;
        const wrongStatus = c.status !== undefined ? status !== c.status : status < 400 || status >= 500;
        if (wrongStatus) {
          failures.push(`${c.name}: ${status} ${text.slice(0, 200)}`);
          return;
        }
        try {
          const error = expectErrorShape(JSON.parse(text));
          if (status === 413 && error.code !== 'request_too_large') failures.push(`${c.name}: 413 with code ${error.code}`);
        } catch (error) {
          failures.push(`${c.name}: ${status} not the error shape: ${(error as Error).message.slice(0, 200)}`);
        }
      }),
    );
  }
  const elapsed = performance.now() - started;
  expect(failures, failures.join('\n')).toEqual([]);
  console.log(`fuzz: ${all.length} cases in ${Math.round(elapsed)} ms`);

  const after = await send({ name: 'correct', method: 'POST', path: '/v1/completions', headers: JSON_TYPE, body: JSON.stringify(correct) });
  expect(after.status).toBe(200);
  expect(JSON.parse(after.text).choices[0].text).toBe(JSON.parse(before.text).choices[0].text);
  expect((await fetch(`${testGateway.url}/health`)).status).toBe(200);
  // nothing it refused left a live session or a ledger record
  expect(await testGateway.state.sessions()).toEqual([]);
  expect((await testGateway.ledger.list()).length).toBe(2);
});

/** Values at the edges of what each field accepts: served (200), never refused or failed. */
const EDGES: Record<string, unknown>[] = [
  { top_p: 0 }, { top_p: 0, temperature: 2 }, { top_p: 1e-300 }, { top_k: 0 }, { top_k: 1_000_000 }, { min_p: 1 }, { min_p: 1e-300, temperature: 2 },
  { repetition_penalty: 0.01 }, { repetition_penalty: 10 }, { temperature: 2 }, { temperature: 1e-300 }, { frequency_penalty: -2, presence_penalty: 2 },
  { seed: Number.MIN_SAFE_INTEGER }, { seed: Number.MAX_SAFE_INTEGER }, { stop: ['\n', '\t', ' ', 'e'] }, { stop: '\u0000' }, { max_tokens: 1 },
  { prompt: '' }, { prompt: ['x'] }, { prompt: '🙂é\u0000\ud800\u202e' }, { user: '' }, { n: 1, best_of: 1, echo: false, logprobs: null, suffix: null },
  { stream: true, stream_options: { include_usage: true } }, { stream: false, stream_options: null }, { unknown_field: { nested: [1, 2] } },
];

it('serves every value at the edge of what a field accepts', async () => {
  const failures: string[] = [];
  for (const extra of EDGES) {
    const response = await fetch(`${testGateway.url}/v1/completions`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: 2, ...extra }), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await response.text();
    if (response.status !== 200) failures.push(`${JSON.stringify(extra)}: ${response.status} ${text.slice(0, 200)}`);
  }
  for (const messages of [[{ role: 'assistant', content: null }], [{ role: 'user', content: [] }], [{ role: 'user', content: '' }], [{ role: 'developer', content: 'x' }, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }]]) {
    const response = await fetch(`${testGateway.url}/v1/chat/completions`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ model: TEST_MODEL, messages, max_tokens: 2 }), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await response.text();
    if (response.status !== 200) failures.push(`chat ${JSON.stringify(messages)}: ${response.status} ${text.slice(0, 200)}`);
  }
  for (const extra of [{ top_p: 0 }, { prompt: '' }, { temperature: 0, top_p: 1 }, { prompt: '🙂é\u0000\ud800' }, { user_wallet: null, request_id: null, model_id: null }, { request_id: 'a.b:c-d_e' }]) {
    const response = await fetch(`${testGateway.url}/inference/generate`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ prompt: 'Once', max_tokens: 2, ...extra }), signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const text = await response.text();
    if (response.status !== 200 || !text.includes('"done":true')) failures.push(`far mesh ${JSON.stringify(extra)}: ${response.status} ${text.slice(0, 200)}`);
  }
  expect(failures, failures.join('\n')).toEqual([]);
});
