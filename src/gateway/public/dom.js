/**
 * Small DOM helpers shared by the pages. Text is always inserted as text, never parsed as HTML: peer names, model
 * names and error messages come from strangers.
 */

/** h('td', { class: 'num', title: 'x' }, 'text', child) → an element; null/false children and props are skipped. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style') Object.assign(el.style, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  el.append(...children.flat().filter((c) => c != null && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return el;
}

/** The distinctive tail of a peer id (they all begin with the same multihash prefix). */
export function shortId(id) {
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}

export function formatCount(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(Math.round(n));
}

export function formatDuration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatTime(epochMs) {
  return new Date(epochMs).toLocaleTimeString([], { hour12: false });
}

/** The message of an OpenAI-shaped error body ({error: {message, code}}), or a fallback. */
export function errorMessage(body, fallback) {
  const error = body && typeof body === 'object' ? body.error : undefined;
  if (!error || typeof error.message !== 'string') return fallback;
  return error.code ? `${error.message} (${error.code})` : error.message;
}
