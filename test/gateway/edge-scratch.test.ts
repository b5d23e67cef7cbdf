import { it } from 'vitest';
import { startTestGateway, TEST_MODEL } from '../support/gateway.js';
import { postJson } from './helpers.js';
it('edges', async () => {
  const g = await startTestGateway();
  const cases = [{ top_p: 0 }, { top_p: 0, temperature: 1 }, { top_k: 0 }, { top_k: 1000000 }, { min_p: 1 }, { min_p: 1, temperature: 2 }, { repetition_penalty: 0.01 }, { repetition_penalty: 10 }, { temperature: 2 }, { frequency_penalty: -2, presence_penalty: 2 }, { seed: -9007199254740991 }, { seed: 9007199254740991 }, { temperature: 0, top_p: 0, top_k: 0, min_p: 0 }, { stop: ['\n', 'a', 'e', ' '] }, { stop: 'Once' }, { max_tokens: 1 }, { prompt: '' }, { prompt: '🙂é\u0000\ud800' }, { prompt: ['x'] }, { user: '' }, { stream: true, stop: ['the'] }, { temperature: 1e-300 }, { top_p: 1e-300 }, { min_p: 1e-300 }];
  for (const extra of cases) {
    const r = await postJson(g.url + '/v1/completions', { model: TEST_MODEL, prompt: 'Once upon a time', max_tokens: 6, ...extra });
    console.log(JSON.stringify(extra), r.status, (await r.text()).slice(0, 300));
  }
  for (const extra of [{ top_p: 0 }, { prompt: '' }, { temperature: 0 }, { prompt: '🙂é\u0000\ud800' }]) {
    const r = await postJson(g.url + '/inference/generate', { prompt: 'Once', max_tokens: 4, ...extra });
    console.log('FM', JSON.stringify(extra), r.status, (await r.text()).slice(0, 400));
  }
  for (const messages of [[{ role: 'assistant', content: null }], [{ role: 'user', content: [] }], [{ role: 'user', content: '' }], [{ role: 'developer', content: 'x' }, { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }]]) {
    const r = await postJson(g.url + '/v1/chat/completions', { model: TEST_MODEL, messages, max_tokens: 4 });
    console.log('CHAT', JSON.stringify(messages), r.status, (await r.text()).slice(0, 300));
  }
  await g.close();
});
