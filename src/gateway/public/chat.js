/** The chat page: streams replies from /v1/chat/completions (fetch + the SSE body read by hand, so it can be stopped). */
import { errorMessage, h } from './dom.js';

const $ = (id) => document.getElementById(id);
const API_KEY_STORAGE = 'corolla.apiKey';

const history = [];
let running = null;

$('api-key').value = localStorage.getItem(API_KEY_STORAGE) ?? '';
$('api-key').addEventListener('change', () => {
  localStorage.setItem(API_KEY_STORAGE, $('api-key').value.trim());
  void loadModels();
});

function headers() {
  const key = $('api-key').value.trim();
  return { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) };
}

function showError(message) {
  $('error').textContent = message ?? '';
  $('error').hidden = !message;
}

/** Throws with the API's error message when `response` is not ok. */
async function check(response) {
  if (response.ok) return response;
  const body = await response.json().catch(() => null);
  throw new Error(errorMessage(body, `HTTP ${response.status} ${response.statusText}`));
}

async function loadModels() {
  try {
    const { data } = await (await check(await fetch('/v1/models', { headers: headers() }))).json();
    const chosen = $('model').value;
    $('model').replaceChildren(...data.map((m) => h('option', { value: m.id, selected: m.id === chosen }, m.status === 'available' ? m.id : `${m.id} (${m.status})`)));
    showError(null);
  } catch (error) {
    showError(`Could not list the models: ${error.message}`);
  }
}

/** Yields the `data` of each server-sent event in a response body. */
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = events.pop();
    for (const event of events) {
      const data = event.split(/\r?\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(5).replace(/^ /, ''));
      if (data.length > 0) yield data.join('\n');
    }
  }
}

function addMessage(role, text) {
  $('hint')?.remove();
  const message = h('div', { class: `msg ${role}`, dataset: { role } }, h('div', { class: 'who' }, role === 'user' ? 'You' : 'Model'), h('div', { class: 'text' }, text));
  $('messages').append(message);
  message.scrollIntoView({ block: 'end' });
  return message;
}

async function send(text) {
  showError(null);
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  const reply = addMessage('assistant', '');
  const output = reply.querySelector('.text');
  reply.dataset.state = 'streaming';
  running = new AbortController();
  setRunning(true);
  let content = '';
  try {
    const request = {
      model: $('model').value || undefined,
      messages: history,
      temperature: Number($('temperature').value),
      max_tokens: Number($('max-tokens').value),
      stream: true,
    };
    const response = await check(await fetch('/v1/chat/completions', { method: 'POST', headers: headers(), body: JSON.stringify(request), signal: running.signal }));
    for await (const data of sseData(response.body)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(errorMessage(chunk, 'the generation failed'));
      const choice = chunk.choices?.[0];
      if (choice?.delta?.content) {
        content += choice.delta.content;
        output.textContent = content;
        reply.scrollIntoView({ block: 'end' });
      }
      if (choice?.finish_reason) reply.dataset.finishReason = choice.finish_reason;
    }
    reply.dataset.state = 'done';
  } catch (error) {
    if (error.name === 'AbortError') {
      reply.dataset.state = 'stopped';
      reply.append(h('div', { class: 'muted' }, '(stopped)'));
    } else {
      reply.dataset.state = 'error';
      showError(error.message);
    }
  } finally {
    running = null;
    setRunning(false);
  }
  if (content) history.push({ role: 'assistant', content });
  else {
    // nothing came back: take the message back so it can be edited and sent again
    history.pop();
    reply.previousElementSibling.remove();
    reply.remove();
    if (!$('prompt').value) $('prompt').value = text;
  }
}

function setRunning(on) {
  $('send').disabled = on;
  $('stop').disabled = !on;
}

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || running) return;
  $('prompt').value = '';
  void send(text);
});
$('prompt').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => running?.abort());
$('clear').addEventListener('click', () => {
  running?.abort();
  history.length = 0;
  $('messages').replaceChildren();
  showError(null);
});

void loadModels();
