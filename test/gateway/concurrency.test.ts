/**
 * 100 concurrent streaming requests (chat and text completions, greedy) on one gateway over a routed two-server
 * swarm: every stream completes with the text the model generates locally, and the ledger holds 100 completed records.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { postJson, Reference, sseData } from '../support/http.js';

const REQUESTS = 100;
const MAX_TOKENS = 8;
const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and her mom went', 'One day, a bird', 'Tom had a red ball'];
const CHATS = [[{ role: 'user' as const, content: 'Tell me a story.' }], [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'What is a cat?' }]];

interface Job {
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly expected: string;
  readonly chat: boolean;
}

let testGateway: TestGateway;
let jobs: Job[];

beforeAll(async () => {
  const reference = await Reference.open();
  const [gateway] = await Promise.all([
    startTestGateway(),
    (async () => {
      const kinds: Job[] = [];
      for (const prompt of PROMPTS) {
        const { text } = await reference.generate(prompt, { maxTokens: MAX_TOKENS });
        kinds.push({ path: '/v1/completions', body: { model: TEST_MODEL, prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true }, expected: text, chat: false });
      }
      for (const messages of CHATS) {
        const { text } = await reference.generate(reference.chatIds(messages), { maxTokens: MAX_TOKENS });
        kinds.push({ path: '/v1/chat/completions', body: { model: TEST_MODEL, messages, max_tokens: MAX_TOKENS, temperature: 0, stream: true }, expected: text, chat: true });
      }
      jobs = Array.from({ length: REQUESTS }, (_, i) => kinds[i % kinds.length]!);
    })(),
  ]);
  testGateway = gateway;
  await reference.close();
});

afterAll(async () => {
  await testGateway?.close();
});

it(`${REQUESTS} concurrent streams all complete with the right text, each recorded as completed`, async () => {
  const started = performance.now();
  const results = await Promise.all(
    jobs.map(async (job) => {
      const response = await postJson(`${testGateway.url}${job.path}`, job.body, { signal: AbortSignal.timeout(60_000) });
      expect(response.status).toBe(200);
      const data = await sseData(response);
      expect(data.at(-1)).toBe('[DONE]');
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { id: string; choices: { text?: string; delta?: { content?: string }; finish_reason: string | null }[] });
      expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
      expect(chunks.at(-1)!.choices[0]!.finish_reason).not.toBeNull();
      const text = chunks.map((c) => (job.chat ? (c.choices[0]!.delta?.content ?? '') : (c.choices[0]!.text ?? ''))).join('');
      return { text, expected: job.expected, requestId: response.headers.get('x-request-id')! };
    }),
  );
  const elapsed = performance.now() - started;
  const wrong = results.filter((r) => r.text !== r.expected);
  expect(wrong, JSON.stringify(wrong.slice(0, 3))).toEqual([]);
  console.log(`${REQUESTS} concurrent streams of ${MAX_TOKENS} tokens in ${Math.round(elapsed)} ms (${Math.round((REQUESTS * MAX_TOKENS) / (elapsed / 1000))} tok/s)`);

  const entries = await testGateway.ledger.list();
  expect(entries).toHaveLength(REQUESTS);
  expect(entries.filter((e) => e.request.status === 'completed')).toHaveLength(REQUESTS);
  expect(new Set(entries.map((e) => e.request.id))).toEqual(new Set(results.map((r) => r.requestId)));
  expect(entries.every((e) => e.request.completionTokens === MAX_TOKENS)).toBe(true);
  expect(await testGateway.state.sessions()).toEqual([]);
  for (const { server } of testGateway.swarm.servers) expect(server.service.activeSessions).toBe(0);
});
