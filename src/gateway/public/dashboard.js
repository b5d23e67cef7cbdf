/** The dashboard: renders each `snapshot` event of /dashboard/feed (the swarm, live sessions, recent requests). */
import { formatCount, formatDuration, formatTime, h, shortId } from './dom.js';

const $ = (id) => document.getElementById(id);

function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, status);
}

function coverageMap(model) {
  const cells = model.coverage.map((count, block) =>
    h(
      'div',
      { class: `cell ${count === 0 ? 'missing' : count === 1 ? 'single' : 'multi'}`, dataset: { block, count }, title: `block ${block}: ${count} server${count === 1 ? '' : 's'}` },
      h('span', { class: 'block' }, block),
      h('span', { class: 'servers' }, count),
    ),
  );
  return h('div', { class: 'coverage', 'aria-label': `block coverage of ${model.name}` }, cells);
}

/** A bar showing which part of the model a server holds. */
function spanBar({ start, end }, numBlocks) {
  const n = Math.max(numBlocks, end, 1);
  return h('div', { class: 'spanbar' }, h('div', { style: { left: `${(start / n) * 100}%`, width: `${((end - start) / n) * 100}%` } }));
}

function serverRow(server, numBlocks) {
  return h(
    'tr',
    { class: 'server-row', dataset: { peerId: server.peerId } },
    h('td', {}, server.name ? h('div', { class: 'name' }, server.name) : null, h('code', { title: server.peerId }, shortId(server.peerId))),
    h('td', {}, h('span', { class: 'span' }, `${server.blocks.start}–${server.blocks.end}`), spanBar(server.blocks, numBlocks)),
    h('td', {}, h('span', { class: `badge state-${server.state}` }, server.state)),
    h('td', {}, server.version),
    h('td', {}, server.engine ?? '—', h('div', { class: 'muted' }, server.quantization)),
    h('td', { class: 'num' }, `${formatCount(server.throughput)} tok/s`),
    h('td', { class: 'num' }, server.activeSessions),
    h('td', { class: 'num' }, formatCount(server.cacheTokensLeft)),
    h('td', {}, server.location ?? '—', h('div', { class: 'muted' }, server.accelerator)),
    h('td', { class: 'num' }, server.rttMs == null ? '—' : `${server.rttMs} ms`),
  );
}

function modelCard(model) {
  const missing = model.coverage.filter((n) => n === 0).length;
  return h(
    'section',
    { class: 'card model', dataset: { model: model.name } },
    h('h2', {}, model.name, ' ', statusBadge(model.status)),
    h(
      'p',
      { class: 'muted' },
      model.modelId ? [h('code', {}, model.modelId), ' · '] : null,
      [
        `${model.numBlocks} blocks`,
        `context ${formatCount(model.contextLength)}`,
        `${model.servers.length} server${model.servers.length === 1 ? '' : 's'}`,
        missing > 0 ? `${missing} block${missing === 1 ? '' : 's'} uncovered` : null,
      ].filter(Boolean).join(' · '),
    ),
    model.reason ? h('p', { class: 'reason' }, model.reason) : null,
    h('h3', {}, 'Block coverage ', h('span', { class: 'muted' }, '(servers per block)')),
    coverageMap(model),
    h('h3', {}, 'Servers'),
    model.servers.length === 0
      ? h('p', { class: 'empty' }, 'No server announces this model.')
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'servers' },
            h('thead', {}, h('tr', {}, ['Server', 'Blocks', 'State', 'Version', 'Engine', 'Throughput', 'Sessions', 'Cache left', 'Location', 'RTT'].map((t, i) => h('th', { class: i >= 5 && i !== 8 ? 'num' : null }, t)))),
            h('tbody', {}, model.servers.map((s) => serverRow(s, model.numBlocks))),
          ),
        ),
  );
}

function sessionRow(session, now) {
  return h(
    'tr',
    { class: 'session-row', dataset: { sessionId: session.id } },
    h('td', {}, h('code', { title: session.id }, session.id.slice(0, 16))),
    h('td', {}, session.model),
    h('td', {}, session.api),
    h('td', { class: 'num' }, session.promptTokens),
    h('td', { class: 'num' }, session.completionTokens),
    h('td', {}, session.servers.map((peer) => h('code', { class: 'peer', title: peer }, shortId(peer)))),
    h('td', { class: 'num' }, formatDuration(now - session.startedAt)),
  );
}

function recentRow(r) {
  return h(
    'tr',
    { class: 'recent-row', dataset: { requestId: r.id } },
    h('td', {}, h('code', { title: r.id }, r.id.slice(0, 16))),
    h('td', {}, r.model),
    h('td', {}, r.api),
    h('td', {}, h('span', { class: `badge request-${r.status}` }, r.status)),
    h('td', { class: 'num' }, r.promptTokens),
    h('td', { class: 'num' }, r.completionTokens),
    h('td', { class: 'num' }, r.costFar),
    h('td', {}, formatTime(r.startedAt)),
    h('td', { class: 'num' }, r.endedAt == null ? '…' : formatDuration(r.endedAt - r.startedAt)),
  );
}

function fillTable(id, rows) {
  $(id).tBodies[0].replaceChildren(...rows);
  $(`${id}-empty`).hidden = rows.length > 0;
}

function render(snapshot) {
  const { gateway } = snapshot;
  $('gateway').replaceChildren(h('code', {}, gateway.id), ` · v${gateway.version} · ${gateway.price_per_token_far} FAR/token`);
  $('models').replaceChildren(...snapshot.models.map(modelCard));
  $('sessions-count').textContent = snapshot.sessions.length ? `(${snapshot.sessions.length})` : '';
  fillTable('sessions', snapshot.sessions.map((s) => sessionRow(s, snapshot.time)));
  fillTable('recent', snapshot.recent.map(recentRow));
  $('live-text').textContent = `live · ${formatTime(snapshot.time)}`;
}

const feed = new EventSource('/dashboard/feed');
feed.addEventListener('snapshot', (event) => {
  $('live').dataset.state = 'live';
  render(JSON.parse(event.data));
});
feed.addEventListener('error', () => {
  // EventSource reconnects by itself
  $('live').dataset.state = 'down';
  $('live-text').textContent = 'reconnecting…';
});
