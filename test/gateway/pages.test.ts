/**
 * The gateway's pages in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core) against a real
 * in-process swarm: the dashboard shows the servers, the block coverage and a session appearing; the chat page
 * streams a reply equal to the API's own answer. Screenshots of both pages are saved to a temp dir.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/files.js';
import { startTestGateway, TEST_MODEL, type TestGateway } from '../support/gateway.js';

const CHROMIUM = '/usr/bin/chromium';

async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install it with \`apt-get update && apt-get install -y chromium\``);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}

/** What the dashboard shows for a peer id (its distinctive tail). */
const shortPeer = (peerId: string) => `…${peerId.slice(-8)}`;

/** A GET whose path goes out exactly as written. */
function rawGet(base: string, requestPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host: new URL(base).hostname, port: new URL(base).port, path: requestPath }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk)).on('end', () => resolve({ status: response.statusCode!, body }));
    });
    request.on('error', reject);
  });
}

function chatRequest(content: string, maxTokens: number, stream: boolean) {
  return { model: TEST_MODEL, messages: [{ role: 'user', content }], temperature: 0, max_tokens: maxTokens, stream };
}

describe('web pages', () => {
  let gateway: TestGateway;
  let browser: Browser;
  let page: Page;
  const shots = tempDir('corolla-pages-');
  const pageErrors: string[] = [];

  beforeAll(async () => {
    [gateway, browser] = await Promise.all([startTestGateway({ settings: { dashboardPushMs: 200 } }), launchChromium()]);
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    page.on('pageerror', (error) => pageErrors.push(error.message));
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    console.log(`screenshots in ${shots}: ${fs.existsSync(shots) ? fs.readdirSync(shots).join(', ') : 'none'}`);
  });

  it('serves the pages and their assets with the right types, and nothing outside them', async () => {
    const get = (p: string) => fetch(`${gateway.url}${p}`, { redirect: 'manual' });
    const root = await get('/');
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/dashboard');
    for (const [p, type] of [['/dashboard', 'text/html'], ['/chat', 'text/html'], ['/static/dashboard.js', 'text/javascript'], ['/static/style.css', 'text/css']] as const) {
      const response = await get(p);
      expect(response.status, p).toBe(200);
      expect(response.headers.get('content-type'), p).toContain(type);
      expect(response.headers.get('cache-control'), p).toBe('no-cache');
    }
    // sent raw: fetch would resolve the dot segments before they reach the gateway
    for (const p of ['/static/../routes/dashboard.ts', '/static/%2e%2e/routes/dashboard.ts', '/static/..%2froutes%2fdashboard.ts', '/static/..\\routes\\dashboard.ts', '/static//etc/passwd', '/static/nope.js']) {
      const { status, body } = await rawGet(gateway.url, p);
      expect([400, 404], p).toContain(status);
      expect(body, p).not.toContain('dashboardRoutes');
    }
  });

  it('chat: streams a greedy reply equal to the non-streaming answer, shown as text', async () => {
    const message = '<b>Once</b> upon a time';
    const expected = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatRequest(message, 40, false)) });
    expect(expected.status).toBe(200);
    const answer = ((await expected.json()) as { choices: [{ message: { content: string } }] }).choices[0].message.content;
    expect(answer.length).toBeGreaterThan(0);

    await page.goto(`${gateway.url}/chat`);
    await page.locator(`#model option[value="${TEST_MODEL}"]`).waitFor({ state: 'attached' });
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '40');
    await page.fill('#prompt', message);
    const sent = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
    await page.click('#send');
    expect(JSON.parse((await sent).postData()!)).toEqual(chatRequest(message, 40, true));

    const reply = page.locator('.msg.assistant').last();
    await reply.and(page.locator('[data-state="done"]')).waitFor();
    expect(await reply.locator('.text').textContent()).toBe(answer);
    // the user's markup is shown as text, never parsed
    expect(await page.locator('.msg.user .text').textContent()).toBe(message);
    expect(await page.locator('.msg.user b').count()).toBe(0);
    await page.screenshot({ path: path.join(shots, 'chat.png') });
  });

  it('chat: shows the API error and stops a generation', async () => {
    await page.goto(`${gateway.url}/chat`);
    await page.locator(`#model option[value="${TEST_MODEL}"]`).waitFor({ state: 'attached' });
    await page.fill('#max-tokens', '1000000');
    await page.fill('#prompt', 'Hello');
    await page.click('#send');
    await expect.poll(() => page.locator('#error').textContent()).toMatch(/maximum context length.*context_length_exceeded/);
    expect(await page.inputValue('#prompt')).toBe('Hello');

    await page.fill('#max-tokens', '1500');
    await page.click('#send');
    await expect.poll(() => page.locator('.msg.assistant .text').textContent(), { timeout: 15_000 }).not.toBe('');
    await page.click('#stop');
    await page.locator('.msg.assistant[data-state="stopped"]').waitFor();
    expect(await page.isDisabled('#stop')).toBe(true);
    expect(await page.isEnabled('#send')).toBe(true);
  });

  it('dashboard: shows each server with its span and a covered cell per block', async () => {
    await page.goto(gateway.url);
    expect(new URL(page.url()).pathname).toBe('/dashboard');
    const rows = page.locator('.server-row');
    await expect.poll(() => rows.count()).toBe(gateway.swarm.servers.length);
    for (const server of gateway.swarm.servers) {
      const row = page.locator(`.server-row[data-peer-id="${server.server.peerId}"]`);
      const text = await row.textContent();
      expect(text).toContain(shortPeer(server.server.peerId));
      expect(text).toContain(`${server.start}–${server.end}`);
    }
    const cells = page.locator('.coverage .cell');
    expect(await cells.count()).toBe(5);
    expect(await page.locator('.coverage .cell.missing').count()).toBe(0);
    expect(await cells.allTextContents()).toEqual(['01', '11', '21', '31', '41']);
    expect(await page.locator('.model h2 .badge').textContent()).toBe('available');
    await expect.poll(() => page.getAttribute('#live', 'data-state')).toBe('live');
  });

  it('dashboard: shows strangers\' strings as text, and a block without a server in red', async () => {
    const evil = '<img src=x onerror="window.pwned=1">';
    const server = { peerId: '12D3KooWEvilPeer00000000', name: evil, blocks: { start: 0, end: 1 }, state: 'online', version: '<i>v</i>', engine: null, quantization: 'q8_0', throughput: 10, activeSessions: 0, cacheTokensLeft: 100, location: '<b>here</b>', accelerator: 'cpu', ethAddress: null, rttMs: null };
    const model = { name: '<script>window.pwned=2</script>', modelId: null, status: 'unavailable', reason: 'no server serves block 1', numBlocks: 3, contextLength: 2048, coverage: [1, 0, 2], servers: [server], updatedAt: 0 };
    const session = { id: 'req_<u>x</u>', model: model.name, api: 'chat.completions', gatewayId: evil, startedAt: Date.now(), promptTokens: 1, completionTokens: 2, servers: [evil] };
    const snapshot = { gateway: { id: evil, version: '1', price_per_token_far: '0.0001' }, models: [model], sessions: [session], recent: [], time: Date.now() };
    try {
      await page.route(`${gateway.url}/dashboard/feed`, (route) => route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: `event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n` }));
      await page.goto(`${gateway.url}/dashboard`, { waitUntil: 'domcontentloaded' });
      await page.locator('.server-row').waitFor();
      expect(await page.locator('.server-row .name').textContent()).toBe(evil);
      expect(await page.locator('.model h2').textContent()).toContain(model.name);
      expect(await page.locator('#gateway').textContent()).toContain(evil);
      expect(await page.locator('body img, body script:not([src]), body b, body i, body u').count()).toBe(0);
      expect(await page.evaluate('typeof window.pwned')).toBe('undefined');
      expect(await page.locator('.coverage .cell').evaluateAll((cells) => cells.map((c) => [c.className, c.textContent]))).toEqual([['cell single', '01'], ['cell missing', '10'], ['cell multi', '22']]);
      expect(await page.locator('.coverage .cell.missing').evaluate((cell) => cell.ownerDocument.defaultView!.getComputedStyle(cell).backgroundColor)).toBe('rgb(229, 83, 75)');
      expect(await page.locator('.model .reason').textContent()).toBe('no server serves block 1');
      await page.screenshot({ path: path.join(shots, 'dashboard-uncovered.png') });
    } finally {
      await page.unrouteAll();
    }
  });

  it('dashboard: a session appears while a long generation streams, then the request in recent usage', async () => {
    await page.goto(`${gateway.url}/dashboard`);
    await page.locator('.server-row').first().waitFor();
    const response = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chatRequest('Tell me a long story.', 1500, true)) });
    const id = response.headers.get('x-request-id')!;
    const session = page.locator(`.session-row[data-session-id="${id}"]`);
    await session.waitFor({ timeout: 15_000 });
    expect(await session.textContent()).toContain(TEST_MODEL);
    // generated tokens count up as it streams (the fifth column)
    await expect.poll(() => session.locator('td').nth(4).textContent(), { timeout: 15_000 }).not.toBe('0');
    await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });
    await response.text();
    const recent = page.locator(`.recent-row[data-request-id="${id}"]`);
    await expect.poll(() => recent.locator('.badge').textContent().catch(() => null), { timeout: 15_000 }).toBe('completed');
    await session.waitFor({ state: 'detached' });
    expect(pageErrors).toEqual([]);
  });
});
