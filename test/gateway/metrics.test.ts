/**
 * GET /metrics after known traffic: request counters by route and status, prompt and generated token totals, the
 * time-to-first-token and inter-token histograms, the active sessions gauge, and the swarm gauges per model.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';
import { eventually } from '../support/wait.js';
import { postJson, sseData } from '../support/http.js';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Prometheus text format samples (no escaped quotes in our label values). */
function parseMetrics(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}

let testGateway: TestGateway;

beforeAll(async () => {
  testGateway = await startTestGateway();
});

afterAll(async () => {
  await testGateway?.close();
});

async function scrape(): Promise<Sample[]> {
  const response = await fetch(`${testGateway.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return parseMetrics(await response.text());
}

/** The one sample of `name` whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]!.value;
}

it('counts requests, tokens and latencies, and shows the live sessions and the swarm', async () => {
  const model = { model: TEST_MODEL };
  let promptTokens = 0;
  let generated = 0;
  let interTokens = 0;
  const count = (p: number, g: number) => {
    promptTokens += p;
    generated += g;
    interTokens += Math.max(0, g - 1);
  };

  for (const maxTokens of [5, 7]) {
    const response = await postJson(`${testGateway.url}/v1/completions`, { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: maxTokens, temperature: 0 });
    expect(response.status).toBe(200);
    const { usage } = (await response.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    count(usage.prompt_tokens, usage.completion_tokens);
  }
  const chat = await postJson(`${testGateway.url}/v1/chat/completions`, { model: TEST_MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, stream: true, stream_options: { include_usage: true } });
  const chatData = await sseData(chat);
  const chatUsage = (JSON.parse(chatData.at(-2)!) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
  count(chatUsage.prompt_tokens, chatUsage.completion_tokens);
  const farMesh = await postJson(`${testGateway.url}/inference/generate`, { prompt: 'Once upon a time', max_tokens: 3, request_id: 'metrics-1' });
  await sseData(farMesh);
  const farMeshEntry = await testGateway.ledger.get('metrics-1');
  count(farMeshEntry!.request.promptTokens, 3);
  expect((await postJson(`${testGateway.url}/v1/chat/completions`, { ...model, messages: [{ role: 'user', content: 'Hi' }], n: 2 })).status).toBe(400);
  expect((await postJson(`${testGateway.url}/v1/completions`, { model: 'nope', prompt: 'x' })).status).toBe(404);
  expect((await postJson(`${testGateway.url}/v1/completions`, { model: 'nope', prompt: 'x' })).status).toBe(404);

  // a live session shows in the gauge while it streams
  const controller = new AbortController();
  const live = await postJson(`${testGateway.url}/v1/completions`, { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: 1000, temperature: 0, stream: true }, { signal: controller.signal });
  const reader = live.body!.getReader();
  await reader.read();
  expect(value(await scrape(), 'corolla_gateway_active_sessions', model)).toBe(1);
  controller.abort();
  await reader.cancel().catch(() => {});
  await eventually(async () => testGateway.gateway.context.generations.activeCount === 0);
  const cancelled = (await testGateway.ledger.list()).find((e) => e.request.status === 'cancelled')!;
  count(cancelled.request.promptTokens, cancelled.request.completionTokens);

  const samples = await scrape();
  const requests = (route: string, status: string) => value(samples, 'corolla_gateway_http_requests_total', { route, method: 'POST', status });
  expect(requests('/v1/completions', '200')).toBe(3);
  expect(requests('/v1/completions', '404')).toBe(2);
  expect(requests('/v1/chat/completions', '200')).toBe(1);
  expect(requests('/v1/chat/completions', '400')).toBe(1);
  expect(requests('/inference/generate', '200')).toBe(1);
  expect(value(samples, 'corolla_gateway_http_errors_total', { route: '/v1/completions', status: '404' })).toBe(2);
  expect(value(samples, 'corolla_gateway_http_errors_total', { route: '/v1/chat/completions', status: '400' })).toBe(1);
  expect(value(samples, 'corolla_gateway_http_requests_total', { route: '/metrics', method: 'GET', status: '200' })).toBe(1);

  expect(value(samples, 'corolla_gateway_prompt_tokens_total', model)).toBe(promptTokens);
  expect(value(samples, 'corolla_gateway_generated_tokens_total', model)).toBe(generated);

  // one first token per request that produced one; one gap per later token
  for (const [name, n] of [['corolla_gateway_time_to_first_token_seconds', 5], ['corolla_gateway_inter_token_latency_seconds', interTokens]] as const) {
    expect(value(samples, `${name}_count`, model)).toBe(n);
    const sum = value(samples, `${name}_sum`, model);
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(n * 30);
    const buckets = samples.filter((s) => s.name === `${name}_bucket` && s.labels.model === TEST_MODEL);
    expect(buckets.length).toBeGreaterThan(5);
    expect(buckets.at(-1)!.labels.le).toBe('+Inf');
    expect(buckets.at(-1)!.value).toBe(n);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
  }

  expect(value(samples, 'corolla_gateway_active_sessions', model)).toBe(0);
  expect(value(samples, 'corolla_swarm_servers', model)).toBe(2);
  expect(value(samples, 'corolla_swarm_block_coverage_ratio', model)).toBe(1);
  expect(value(samples, 'corolla_swarm_model_available', model)).toBe(1);
  // the process metrics come with the gateway prefix
  expect(samples.some((s) => s.name === 'corolla_gateway_process_cpu_seconds_total')).toBe(true);
});
