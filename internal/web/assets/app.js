// The operator page: cascades as the operator API shows them, live.
//
// Everything it shows comes from the API with the token a person pasted:
// the token is kept in this tab's session storage and sent only in the
// Authorization header (never in a URL), so a page without a token shows
// nothing. Data is put in the page as text (textContent), never as HTML.
// The watch stream is read with fetch, because EventSource cannot send
// an Authorization header.
'use strict';

(() => {
  const TOKEN_KEY = 'orchestrator.api-token';
  const API = '../api/v1/';
  const LIST_EVERY = 5000;

  const STATE_WORDS = {
    waiting: 'waiting', ready: 'ready', dispatching: 'dispatching', running: 'running',
    awaiting_approval: 'awaiting approval', applied: 'applied', no_changes: 'no changes',
    failed: 'failed', blocked: 'blocked', skipped: 'skipped',
  };
  const STATE_ORDER = Object.keys(STATE_WORDS);
  const OPEN = new Set(['waiting', 'ready', 'dispatching', 'running', 'awaiting_approval']);

  const page = {
    token: null,
    who: null,
    orgs: new Set(),
    paused: {},
    selected: null,
    view: null,
    watch: null, // AbortController of the watch stream
    streamOpen: false, // the watch stream is open and has answered
    auditKey: null, // what the cascade's audit trail was last loaded for
    pane: null, // 'cascade', 'why', 'audit' or null
    wsTimer: 0,
    listTimer: 0,
    clockTimer: 0,
    dialogAct: null,
  };

  // ---- DOM helpers: data goes in as text, never as markup.

  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.setAttribute('class', v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function clear(node) {
    while (node.firstChild) node.firstChild.remove();
  }

  function show(node, on) {
    node.hidden = !on;
  }

  // A link to TFE, only for http(s) addresses, opened without a referrer.
  function link(url, text) {
    if (!/^https?:\/\//i.test(url || '')) return document.createTextNode(text);
    return el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, text);
  }

  // ---- Time.

  const pad = (n) => String(n).padStart(2, '0');

  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return t;
    return `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${t}`;
  }

  function fmtDur(ms) {
    if (!(ms >= 0)) return '';
    if (ms < 1000) return `${(ms / 1000).toFixed(1)}s`;
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    return `${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
  }

  // sinceISO is the RFC 3339 time a "last N hours" choice ("6h") starts.
  function sinceISO(choice) {
    const h = parseInt(choice, 10);
    if (!(h > 0)) return '';
    return new Date(Date.now() - h * 3600 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  function ago(iso) {
    return iso ? `${fmtDur(Date.now() - Date.parse(iso))} ago` : '';
  }

  // ---- The API.

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function authHeaders(extra) {
    return Object.assign({ Authorization: `Bearer ${page.token}` }, extra || {});
  }

  async function api(method, path, body) {
    if (!page.token) throw new APIError(401, 'not signed in');
    const init = {
      method,
      headers: authHeaders({ Accept: 'application/json' }),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(API + path, init);
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const msg = (data && data.error) || `${res.status} ${res.statusText}`;
      if (res.status === 401 && path !== 'whoami') signOut('The server refused the token (401): sign in again.');
      throw new APIError(res.status, msg);
    }
    return data;
  }

  // ---- Signing in and out.

  async function signIn(token) {
    page.token = token;
    try {
      page.who = await api('GET', 'whoami');
    } catch (e) {
      page.token = null;
      page.who = null;
      const err = $('#signin-error');
      err.textContent = e.status === 401 ? 'That token is not known here.' : e.message;
      show(err, true);
      show($('#signin'), true);
      return false;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#token').value = '';
    show($('#signin-error'), false);
    show($('#signin'), false);
    $('#who').textContent = `${page.who.name} · ${page.who.role}`;
    show($('#session'), true);
    show($('#app'), true);
    document.body.classList.toggle('can-operate', canOperate());
    await Promise.all([loadList(), loadControls()]);
    page.listTimer = setInterval(() => {
      loadList();
      loadControls();
      if (page.pane === 'audit') loadAudit();
    }, LIST_EVERY);
    page.clockTimer = setInterval(tick, 1000);
    route();
    return true;
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopWatch();
    clearInterval(page.listTimer);
    clearInterval(page.clockTimer);
    Object.assign(page, { token: null, who: null, orgs: new Set(), paused: {}, selected: null, view: null, auditKey: null, pane: null });
    for (const sel of ['#cascades', '#banners', '#legend', '#graph', '#timeline', '#members tbody', '#c-audit', '#why-result', '#audit']) clear($(sel));
    for (const sel of ['#c-title', '#c-meta', '#who', '#global-pause']) $(sel).textContent = '';
    for (const sel of ORG_SELECTS) {
      const orgs = $(sel);
      while (orgs.options.length > 1) orgs.remove(1);
    }
    $('#f-ws').value = '';
    $('#why-ws').value = '';
    show($('#cascade'), false);
    show($('#why-pane'), false);
    show($('#audit-pane'), false);
    show($('#app'), false);
    show($('#session'), false);
    const d = $('#confirm');
    if (d.open) d.close();
    const err = $('#signin-error');
    err.textContent = message || '';
    show(err, Boolean(message));
    show($('#signin'), true);
    $('#token').focus();
  }

  const canOperate = () => Boolean(page.who && page.who.role === 'operate');

  // ---- The list of cascades and the controls in force.

  async function loadList() {
    const q = new URLSearchParams({ limit: '200' });
    const org = $('#f-org').value;
    const st = $('#f-state').value;
    const ws = $('#f-ws').value.trim();
    const since = sinceISO($('#f-since').value);
    if (org) q.set('organization', org);
    if (st) q.set('state', st);
    if (ws) q.set('workspace', ws);
    if (since) q.set('since', since);
    let data;
    try {
      data = await api('GET', `cascades?${q}`);
    } catch (e) {
      if (!page.token) return;
      $('#list-error').textContent = e.message;
      show($('#list-error'), true);
      return;
    }
    if (!page.token) return;
    // An answer to an older search is not shown over a newer one.
    if (q.get('workspace') !== ($('#f-ws').value.trim() || null)) return;
    show($('#list-error'), false);
    for (const c of data.cascades) page.orgs.add(c.organization);
    renderOrgs();
    renderList(data.cascades);
  }

  const ORG_SELECTS = ['#f-org', '#why-org', '#a-org'];

  function renderOrgs() {
    for (const s of ORG_SELECTS) {
      const sel = $(s);
      const have = new Set([...sel.options].map((o) => o.value));
      for (const org of [...page.orgs].sort()) {
        if (!have.has(org)) sel.append(el('option', { value: org }, org));
      }
    }
  }

  function cascadeBadge(c) {
    let cls = `s-${c.state}`;
    let text = c.state === 'set_aside' ? 'set aside' : c.state;
    if (c.state === 'done') {
      cls = `s-done-${c.outcome || 'applied'}`;
      text = `done: ${c.outcome || 'applied'}`;
    }
    return el('span', { class: `badge ${cls}` }, text);
  }

  function progress(counts, members) {
    const parts = [];
    for (const s of STATE_ORDER) {
      if (counts && counts[s]) parts.push(`${counts[s]} ${STATE_WORDS[s]}`);
    }
    return `${members} member${members === 1 ? '' : 's'}${parts.length ? ': ' + parts.join(', ') : ''}`;
  }

  function renderList(list) {
    const ul = $('#cascades');
    clear(ul);
    show($('#list-empty'), list.length === 0);
    for (const c of list) ul.append(listEntry(c));
  }

  // listEntry is one cascade in the list, from a summary or a view.
  function listEntry(c) {
    return el('li', { 'data-id': c.id, class: c.id === page.selected ? 'selected' : null },
      el('a', { href: `#${encodeURIComponent(c.id)}` },
        el('div', { class: 'row1' }, el('span', { class: 'root', title: c.root }, c.root), cascadeBadge(c)),
        el('div', { class: 'row2' }, `${c.organization} · started ${fmtTime(c.started_at)}`),
        el('div', { class: 'row3' }, progress(c.counts, c.members))));
  }

  // updateListEntry keeps the list's entry of the cascade shown as live as
  // the cascade (the list itself is polled).
  function updateListEntry(v) {
    const old = [...document.querySelectorAll('#cascades li')].find((li) => li.dataset.id === v.id);
    if (old) old.replaceWith(listEntry(Object.assign({}, v, { members: v.members.length })));
  }

  async function loadControls() {
    let ctl;
    try {
      ctl = await api('GET', 'controls');
    } catch (e) {
      return;
    }
    if (page.token) renderControls(ctl);
  }

  function renderControls(ctl) {
    page.paused = ctl.paused || {};
    const parts = [];
    for (const [org, c] of Object.entries(page.paused)) {
      parts.push(`Paused ${org ? 'in ' + org : 'everywhere'} by ${c.by}: ${c.why}`);
    }
    const now = Date.now();
    for (const f of ctl.freezes || []) {
      if (Date.parse(f.start) <= now && now < Date.parse(f.end)) {
        parts.push(`Frozen ${f.organization ? 'in ' + f.organization : 'everywhere'} until ${fmtTime(f.end)}: ${f.why}`);
      }
    }
    const pill = $('#global-pause');
    pill.textContent = parts.join(' · ');
    show(pill, parts.length > 0);
    show($('#pause-btn'), canOperate());
    show($('#resume-btn'), canOperate() && Object.keys(page.paused).length > 0);
  }

  // ---- One cascade, live.

  // route shows what the address names: #<cascade ID>, #why,
  // #why/<organization>/<workspace> (organization may be empty), #audit.
  function route() {
    if (!page.token) return;
    const hash = location.hash.replace(/^#/, '');
    const parts = hash.split('/').map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
    if (parts[0] === 'why') {
      select(null);
      showPane('why');
      if (parts.length >= 3) {
        $('#why-ws').value = parts.slice(2).join('/');
        $('#why-org').value = [...$('#why-org').options].some((o) => o.value === parts[1]) ? parts[1] : '';
        loadWhy(parts[1], parts.slice(2).join('/'));
      } else {
        clear($('#why-result'));
        $('#why-ws').focus();
      }
      return;
    }
    if (parts[0] === 'audit') {
      select(null);
      showPane('audit');
      loadAudit();
      return;
    }
    select(parts[0] || null);
  }

  // showPane shows one of the right-hand panes: a cascade, why, the audit
  // trail, or (null) the hint to pick a cascade.
  function showPane(which) {
    page.pane = which;
    show($('#pick'), which === null);
    show($('#why-pane'), which === 'why');
    show($('#audit-pane'), which === 'audit');
    if (which !== 'cascade') show($('#cascade'), false);
    $('#why-link').classList.toggle('selected', which === 'why');
    $('#audit-link').classList.toggle('selected', which === 'audit');
  }

  function select(id) {
    if (id === page.selected && page.pane === (id ? 'cascade' : null)) return;
    stopWatch();
    page.selected = id;
    page.view = null;
    page.auditKey = null;
    for (const li of document.querySelectorAll('#cascades li')) li.classList.toggle('selected', li.dataset.id === id);
    showPane(id ? 'cascade' : null);
    show($('#cascade'), false);
    show($('#c-error'), false);
    clear($('#c-audit'));
    if (!id) return;
    const ctl = new AbortController();
    page.watch = ctl;
    watch(id, ctl.signal);
  }

  function stopWatch() {
    if (page.watch) page.watch.abort();
    page.watch = null;
    page.streamOpen = false;
    showLive();
  }

  function setStream(open) {
    page.streamOpen = open;
    showLive();
  }

  // showLive says whether what is shown is live: the green dot only while
  // the watch stream is open and the cascade is running. A cascade that is
  // over (done, set aside) changes no more: it has no dot, whatever the
  // stream.
  function showLive() {
    const live = $('#live');
    const v = page.view;
    let cls = 'live';
    let text = '';
    if (page.watch && v && v.state !== 'running') {
      text = v.state === 'done' ? 'finished' : 'set aside';
    } else if (page.watch && page.streamOpen && v) {
      cls = 'live on';
      text = 'live';
    } else if (page.watch && !page.streamOpen && v) {
      cls = 'live off';
      text = 'reconnecting…';
    }
    live.className = cls;
    live.textContent = text;
  }

  function wait(ms, signal) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  // watch reads the cascade's event stream and renders every view, and
  // reconnects (backing off) when the stream breaks.
  async function watch(id, signal) {
    let backoff = 1000;
    while (!signal.aborted) {
      try {
        const res = await fetch(`${API}cascades/${encodeURIComponent(id)}/watch`, {
          headers: authHeaders({ Accept: 'text/event-stream' }),
          cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer', signal,
        });
        if (!res.ok) {
          const data = await res.json().catch(() => null);
          const msg = (data && data.error) || `${res.status} ${res.statusText}`;
          if (res.status === 401) {
            signOut('The server refused the token (401): sign in again.');
            return;
          }
          showCascadeError(msg);
          if (res.status === 404 || res.status === 403) return;
          throw new APIError(res.status, msg);
        }
        setStream(true);
        backoff = 1000;
        await readEvents(res.body, (event, data) => {
          if (event === 'view' && !signal.aborted) render(JSON.parse(data));
        });
      } catch (e) {
        if (signal.aborted) return;
      }
      setStream(false);
      await wait(backoff, signal);
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  // readEvents parses a server-sent event stream: blocks separated by a
  // blank line, "event:" and "data:" fields, ":" comments.
  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf = (buf + decoder.decode(value, { stream: true })).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let event = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line === '' || line.startsWith(':')) continue;
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length) onEvent(event, data.join('\n'));
      }
    }
  }

  function showCascadeError(msg) {
    const e = $('#c-error');
    e.textContent = msg;
    show(e, true);
    show($('#pick'), false);
  }

  function render(v) {
    if (v.id !== page.selected || page.pane !== 'cascade') return;
    page.view = v;
    updateListEntry(v);
    show($('#c-error'), false);
    show($('#cascade'), true);
    showLive();
    const title = $('#c-title');
    clear(title);
    title.append(`Cascade from ${v.root}`, cascadeBadge(v));
    const meta = $('#c-meta');
    clear(meta);
    meta.append(`${v.organization} · `, el('span', { class: 'mono' }, v.id),
      ` · started ${fmtTime(v.started_at)}`,
      v.finished_at ? ` · finished ${fmtTime(v.finished_at)} (took ${fmtDur(Date.parse(v.finished_at) - Date.parse(v.started_at))})` : ` (${ago(v.started_at)})`,
      ' · root run ', link(v.root_run_url, v.root_run_id),
      v.runs_saved ? ` · ${v.runs_saved} run${v.runs_saved === 1 ? '' : 's'} saved: no upstream output changed` : '');
    show($('#cancel-btn'), canOperate() && v.state === 'running' && !v.cancelled);
    show($('#approve-btn'), canOperate() && Boolean(v.held));
    renderBanners(v);
    renderLegend(v);
    renderGraph(v);
    renderTimeline(v);
    renderMembers(v);
    // The trail changes with a control: reloaded when one shows in the view.
    const key = [v.id, v.paused, v.held, v.cancelled, v.members.map((m) => m.attempts || 0).join(',')].join('|');
    if (key !== page.auditKey) {
      page.auditKey = key;
      loadCascadeAudit(v.id);
    }
  }

  function renderBanners(v) {
    const b = $('#banners');
    clear(b);
    const banner = (kind, head, text) => b.append(el('div', { class: `banner ${kind}` }, el('strong', {}, head), text));
    if (v.paused) banner('paused', 'Dispatching paused.', `${v.paused}. Members whose upstreams finished wait; runs under way go on.`);
    if (v.held) banner('held', 'Held by the blast-radius guard.', `${v.held}. Nothing is dispatched until an operator approves it.`);
    if (v.cancelled) banner('cancelled', 'Cancelled.', `${v.cancelled}.`);
    for (const cy of v.cycles || []) banner('cycle', 'Run-trigger cycle:', `${cy}. Its workspaces never run in a cascade.`);
    if (v.dry_run) banner('dry', 'Dry run:', 'every decision is made and nothing is written to TFE.');
    if (v.reason && v.state === 'done' && v.outcome !== 'applied') banner('cancelled', 'Outcome:', v.reason);
  }

  function renderLegend(v) {
    const l = $('#legend');
    clear(l);
    for (const s of STATE_ORDER) {
      const n = (v.counts || {})[s];
      if (n) l.append(el('span', { class: `badge s-${s}` }, `${STATE_WORDS[s]} ${n}`));
    }
  }

  const truncate = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

  function stateLabel(m) {
    let s = STATE_WORDS[m.state] || m.state;
    if (m.run_status && m.run_status !== m.state) s += ` · ${m.run_status.replace(/_/g, ' ')}`;
    return s;
  }

  // renderGraph draws the members in columns, one per layer, in dispatch
  // order, with an edge from each upstream a member waits for.
  function renderGraph(v) {
    const BW = 172;
    const BH = 50;
    const GX = 48;
    const LOOP = 40; // room on the right for edges within a column (cycles)
    const GY = 14;
    const PAD = 16;
    const TOP = 28;
    const nodes = [{ name: v.root, layer: 0, state: 'applied', run_url: v.root_run_url, root: true,
      reason: 'its run applied: the cascade started here' }].concat(v.members);
    const layers = [...new Set(nodes.map((n) => n.layer))].sort((a, b) => a - b);
    const cols = layers.map((l) => nodes.filter((n) => n.layer === l));
    const rows = Math.max(...cols.map((c) => c.length));
    const width = PAD * 2 + cols.length * BW + (cols.length - 1) * GX + LOOP;
    const height = TOP + PAD * 2 + rows * BH + (rows - 1) * GY;
    const at = new Map();
    const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
      'aria-label': `graph of cascade ${v.id}` });
    root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z' }))));
    cols.forEach((col, ci) => {
      const x = PAD + ci * (BW + GX);
      root.append(svg('text', { class: 'col-title', x, y: PAD + 8 }, layers[ci] === 0 ? 'root' : `layer ${layers[ci]}`));
      const y0 = TOP + PAD + ((rows - col.length) * (BH + GY)) / 2;
      col.forEach((n, ri) => at.set(n.name, { x, y: y0 + ri * (BH + GY), n }));
    });
    const edges = svg('g', { class: 'edges' });
    for (const m of v.members) {
      const to = at.get(m.name);
      for (const up of m.waits_for || []) {
        const from = at.get(up);
        if (!from || !to) continue;
        let cls = 'edge';
        if (from.n.state === 'applied' || from.n.state === 'no_changes') cls += ' from-done';
        if (from.n.state === 'failed' || from.n.state === 'blocked') cls += ' from-failed';
        const y1 = from.y + BH / 2;
        const y2 = to.y + BH / 2;
        let d;
        if (to.x > from.x) {
          const x1 = from.x + BW;
          const x2 = to.x - 2;
          const bend = Math.max(24, (x2 - x1) / 2);
          d = `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
        } else {
          // Within a column or backwards (a cycle): out of the right side
          // of the upstream and into the right side of the downstream.
          const x1 = from.x + BW;
          const x2 = to.x + BW + 2;
          const out = Math.max(x1, x2) + 14 + Math.min(Math.abs(y2 - y1) / 4, LOOP - 16);
          d = `M${x1},${y1 - 6} C${out},${y1 - 6} ${out},${y2 + 6} ${x2},${y2 + 6}`;
        }
        edges.append(svg('path', { class: cls, 'marker-end': 'url(#arrow)', d }));
      }
    }
    root.append(edges);
    for (const { x, y, n } of at.values()) {
      const label = n.root ? 'root · applied' : stateLabel(n);
      const g = svg('g', { class: `node s-${n.state}${n.root ? ' root' : ''}`, transform: `translate(${x},${y})`,
        'data-workspace': n.name, 'data-state': n.state },
      svg('title', {}, `${n.name}: ${n.root ? 'root' : STATE_WORDS[n.state]}${n.reason ? ' — ' + n.reason : ''}`),
      svg('rect', { width: BW, height: BH, rx: 7 }),
      svg('text', { class: 'name', x: 12, y: 21 }, truncate(n.name, 20)),
      svg('text', { class: 'state', x: 12, y: 39 }, truncate(label, 26)));
      root.append(/^https?:\/\//i.test(n.run_url || '')
        ? svg('a', { href: n.run_url, target: '_blank', rel: 'noopener noreferrer' }, g) : g);
    }
    const box = $('#graph');
    clear(box);
    // A few columns too many are scaled to fit; a wide graph scrolls.
    root.classList.toggle('fit', cols.length <= 7);
    box.append(root);
  }

  // renderTimeline draws, per member, the wait for its upstreams (a thin
  // line from the cascade's start) and its run (a bar from ready to
  // finished, or to now while it is open).
  function renderTimeline(v) {
    const box = $('#timeline');
    clear(box);
    const t0 = Date.parse(v.started_at);
    const now = Date.now();
    let t1 = v.finished_at ? Date.parse(v.finished_at) : now;
    for (const m of v.members) {
      for (const t of [m.ready_at, m.finished_at, m.since]) if (t) t1 = Math.max(t1, Date.parse(t));
    }
    const span = Math.max(t1 - t0, 1000);
    const pct = (t) => `${Math.min(100, Math.max(0, ((t - t0) / span) * 100)).toFixed(2)}%`;
    box.append(el('div', {}), el('div', { class: 'axis' },
      el('span', {}, fmtTime(v.started_at)),
      el('span', {}, `${v.finished_at ? fmtTime(v.finished_at) : 'now'} (+${fmtDur(span)})`)), el('div', {}));
    for (const m of v.members) {
      const track = el('div', { class: 'track', 'data-workspace': m.name });
      const ready = m.ready_at ? Date.parse(m.ready_at) : 0;
      const open = OPEN.has(m.state);
      let dur = '';
      if (ready) {
        const wait = el('div', { class: 'wait' });
        wait.style.left = pct(t0);
        wait.style.width = `calc(${pct(ready)} - ${pct(t0)})`;
        const end = m.finished_at ? Date.parse(m.finished_at) : open ? now : Date.parse(m.since || m.ready_at);
        const bar = el('div', { class: `bar s-${m.state}`, title: `${STATE_WORDS[m.state]}: ${fmtTime(m.ready_at)} → ${m.finished_at ? fmtTime(m.finished_at) : open ? 'now' : fmtTime(m.since)}` });
        bar.style.left = pct(ready);
        bar.style.width = `calc(${pct(end)} - ${pct(ready)})`;
        track.append(wait, bar);
        dur = fmtDur(end - ready);
      } else if (open) {
        const wait = el('div', { class: 'wait' });
        wait.style.left = pct(t0);
        wait.style.width = `calc(${pct(now)} - ${pct(t0)})`;
        track.append(wait);
        dur = 'waiting';
      } else if (m.since) {
        const mark = el('div', { class: `mark s-${m.state}`, title: `${STATE_WORDS[m.state]} at ${fmtTime(m.since)}` });
        mark.style.left = pct(Date.parse(m.since));
        track.append(mark);
        dur = STATE_WORDS[m.state];
      }
      box.append(el('div', { class: 'tl-name', title: m.name }, m.name), track, el('div', { class: 'tl-dur' }, dur));
    }
  }

  function renderMembers(v) {
    const body = $('#members tbody');
    clear(body);
    for (const m of v.members) {
      const why = [m.reason || ''];
      if (m.gate && !(m.reason || '').includes(m.gate)) why.push(`(${m.gate})`);
      if (m.attempts > 1) why.push(`(attempt ${m.attempts})`);
      if (m.stopped) why.push(`(the cascade stopped ${m.stopped} run${m.stopped === 1 ? '' : 's'} that TFE’s run triggers queued here)`);
      const run = m.run_id
        ? el('td', { class: 'run' }, link(m.run_url, m.run_id), m.adopted ? el('div', { class: 'adopted' }, 'queued by TFE’s run trigger') : null)
        : el('td', { class: 'muted' }, '—');
      const retryable = m.state === 'failed' || (m.state === 'blocked' && (m.cause === 'preflight' || m.cause === 'refused'));
      const action = canOperate() && retryable
        ? el('button', { type: 'button', class: 'small retry', onclick: () => retry(v, m) }, 'Retry…') : null;
      body.append(el('tr', { 'data-workspace': m.name, 'data-state': m.state },
        el('td', { class: 'muted' }, m.layer),
        el('td', { class: 'name', title: m.workspace_id },
          el('a', { href: whyHash(v.organization, m.name), title: `why: what the cascades kept did to ${m.name}` }, m.name)),
        el('td', {}, el('span', { class: `badge s-${m.state}` }, stateLabel(m))),
        el('td', { class: 'reason' }, why.join(' ')),
        run,
        el('td', { class: 'waits' }, (m.waits_for || []).join(', ')),
        el('td', { class: 'time', title: m.ready_at || '' }, fmtTime(m.ready_at)),
        el('td', { class: 'time', title: m.finished_at || '' }, fmtTime(m.finished_at)),
        el('td', {}, action)));
    }
  }

  // ---- The audit trail: of one cascade, and of all.

  const ACTION_WORDS = {
    pause: 'pause', resume: 'resume', cancel: 'cancel', retry: 'retry', approve: 'approve',
    freeze_added: 'freeze added', freeze_removed: 'freeze removed',
    exclusion_added: 'exclusion added', exclusion_removed: 'exclusion removed',
  };

  // auditEntry is one control as recorded: when, what, who, why, what it
  // concerns, and how things stood before and after.
  function auditEntry(r, inCascade) {
    const about = [];
    if (r.organization) about.push(`in ${r.organization}`);
    else if (['pause', 'resume', 'freeze_added', 'freeze_removed'].includes(r.action) && !r.cascade) about.push('everywhere');
    if (r.workspace) about.push(`workspace ${r.workspace}`);
    return el('li', { 'data-action': r.action },
      el('div', { class: 'a-head' },
        el('span', { class: 'time', title: r.at }, fmtTime(r.at)),
        el('span', { class: `badge a-${r.action}` }, ACTION_WORDS[r.action] || r.action),
        el('span', { class: 'a-by' }, r.by),
        about.length ? el('span', { class: 'muted' }, about.join(' · ')) : null,
        r.cascade && !inCascade ? el('a', { class: 'mono', href: `#${encodeURIComponent(r.cascade)}` }, r.cascade) : null),
      el('div', { class: 'a-why' }, '“', r.why, '”'),
      r.before ? el('div', { class: 'a-change' }, el('span', { class: 'muted' }, 'before: '), r.before) : null,
      r.after ? el('div', { class: 'a-change' }, el('span', { class: 'muted' }, 'after: '), r.after) : null);
  }

  async function loadCascadeAudit(id) {
    let data;
    try {
      data = await api('GET', `cascades/${encodeURIComponent(id)}/audit?limit=200`);
    } catch (e) {
      if (!page.token || page.selected !== id) return;
      $('#c-audit-error').textContent = `audit trail: ${e.message}`;
      show($('#c-audit-error'), true);
      return;
    }
    if (!page.token || page.selected !== id) return;
    show($('#c-audit-error'), false);
    const ol = $('#c-audit');
    clear(ol);
    for (const r of data.records) ol.append(auditEntry(r, true));
    if (!data.records.length) ol.append(el('li', { class: 'muted none' }, 'No control was used on this cascade. Pauses of an organization or of everywhere are in the audit trail.'));
  }

  async function loadAudit() {
    const q = new URLSearchParams({ limit: '200' });
    const org = $('#a-org').value;
    const since = sinceISO($('#a-since').value);
    if (org) q.set('organization', org);
    if (since) q.set('since', since);
    let data;
    try {
      data = await api('GET', `audit?${q}`);
    } catch (e) {
      if (!page.token) return;
      $('#audit-error').textContent = e.message;
      show($('#audit-error'), true);
      return;
    }
    if (!page.token || page.pane !== 'audit') return;
    show($('#audit-error'), false);
    const ol = $('#audit');
    clear(ol);
    for (const r of data.records) ol.append(auditEntry(r, false));
    show($('#audit-empty'), data.records.length === 0);
  }

  // ---- Why: what the cascades kept did to a workspace.

  function whyHash(org, workspace) {
    return `#why/${encodeURIComponent(org || '')}/${encodeURIComponent(workspace)}`;
  }

  async function loadWhy(org, workspace) {
    const box = $('#why-result');
    const q = new URLSearchParams();
    if (org) q.set('organization', org);
    let w;
    try {
      w = await api('GET', `why/${encodeURIComponent(workspace)}${org ? '?' + q : ''}`);
    } catch (e) {
      if (!page.token) return;
      clear(box);
      $('#why-error').textContent = e.message;
      show($('#why-error'), true);
      return;
    }
    if (!page.token || page.pane !== 'why') return;
    show($('#why-error'), false);
    clear(box);
    box.append(el('p', { class: 'why-for' }, el('strong', {}, w.workspace), w.organization ? ` in ${w.organization}` : ' in any organization',
      `: ${w.cascades.length} cascade${w.cascades.length === 1 ? '' : 's'} kept reached it`));
    if (w.excluded) {
      const x = w.excluded;
      box.append(el('div', { class: 'banner held' }, el('strong', {}, 'Excluded:'),
        `${x.name ? 'workspace ' + x.name : 'tag ' + x.tag}${x.organization ? ' in ' + x.organization : ''}, by ${x.by}: ${x.why}. Cascades never run it.`));
    }
    if (w.explanation) box.append(el('p', { class: 'why-explanation' }, w.explanation));
    const ol = el('ol', { class: 'why-list' });
    for (const c of w.cascades) {
      const state = c.state === 'root' ? 'root' : (STATE_WORDS[c.state] || c.state);
      const cstate = c.cascade_state === 'done' ? `done: ${c.outcome || 'applied'}` : c.cascade_state.replace(/_/g, ' ');
      ol.append(el('li', { 'data-cascade': c.cascade_id, 'data-state': c.state },
        el('div', { class: 'a-head' },
          el('span', { class: `badge s-${c.state}` }, state),
          el('a', { href: `#${encodeURIComponent(c.cascade_id)}` }, `cascade from ${c.root}`),
          el('span', { class: 'mono muted' }, c.cascade_id),
          el('span', { class: 'muted' }, `${c.organization} · started ${fmtTime(c.started_at)} · ${cstate}`),
          c.run_id ? link(c.run_url, c.run_id) : null),
        el('p', { class: 'why-explanation' }, c.explanation)));
    }
    box.append(ol);
  }

  // tick keeps what depends on the clock current: bars of open members.
  function tick() {
    if (page.view && page.view.state === 'running') renderTimeline(page.view);
  }

  // ---- Controls: each asks why, and is recorded with who.

  function ask(opts) {
    const d = $('#confirm');
    $('#confirm-title').textContent = opts.title;
    $('#confirm-text').textContent = opts.text;
    $('#confirm-ok').textContent = opts.ok || 'Confirm';
    $('#confirm-ok').className = opts.danger ? 'danger' : 'primary';
    $('#why').value = '';
    $('#stop-runs').checked = false;
    show($('#stop-runs-label'), Boolean(opts.stopRuns));
    const scope = $('#scope');
    clear(scope);
    for (const [value, text] of opts.scopes || []) scope.append(el('option', { value }, text));
    show($('#scope-label'), Boolean(opts.scopes));
    show($('#confirm-error'), false);
    page.dialogAct = opts.act;
    d.showModal();
    $('#why').focus();
  }

  async function submitDialog(e) {
    e.preventDefault();
    const why = $('#why').value.trim();
    const err = $('#confirm-error');
    if (!why) {
      err.textContent = 'Say why: it is recorded with the control.';
      show(err, true);
      return;
    }
    const ok = $('#confirm-ok');
    ok.disabled = true;
    try {
      await page.dialogAct({ why, stopRuns: $('#stop-runs').checked, scope: $('#scope').value });
      $('#confirm').close();
    } catch (x) {
      err.textContent = x.message;
      show(err, true);
    } finally {
      ok.disabled = false;
    }
  }

  function pause() {
    const scopes = [['', 'everywhere']].concat([...page.orgs].sort().map((o) => [o, `organization ${o}`]));
    ask({
      title: 'Pause dispatching',
      text: 'No cascade dispatches while paused: members whose upstreams finished wait, and runs already under way go on. Resume continues the same cascades.',
      ok: 'Pause', scopes,
      act: async ({ why, scope }) => {
        renderControls(await api('POST', 'pause', { organization: scope || undefined, why }));
      },
    });
  }

  function resume() {
    const scopes = Object.keys(page.paused).sort().map((o) => [o, o ? `organization ${o}` : 'everywhere']);
    ask({
      title: 'Resume dispatching',
      text: 'Dispatching goes on where it stopped.',
      ok: 'Resume', scopes,
      act: async ({ why, scope }) => {
        renderControls(await api('POST', 'resume', { organization: scope || undefined, why }));
      },
    });
  }

  function cancel() {
    const v = page.view;
    ask({
      title: `Cancel the cascade from ${v.root}`,
      text: 'The cascade dispatches nothing more and its open members end blocked. A run that is applying is never cancelled.',
      ok: 'Cancel cascade', danger: true, stopRuns: true,
      act: async ({ why, stopRuns }) => {
        render(await api('POST', `cascades/${encodeURIComponent(v.id)}/cancel`, { why, stop_runs: stopRuns }));
        loadList();
      },
    });
  }

  function approve() {
    const v = page.view;
    ask({
      title: `Approve the cascade from ${v.root}`,
      text: `${v.held}. Approved, it dispatches.`,
      ok: 'Approve',
      act: async ({ why }) => {
        render(await api('POST', `cascades/${encodeURIComponent(v.id)}/approve`, { why }));
      },
    });
  }

  function retry(v, m) {
    ask({
      title: `Retry ${m.name}`,
      text: `${m.name} runs again with a new run, and what it blocked goes on. Fix the cause first: ${m.reason || 'no reason given'}.`,
      ok: 'Retry',
      act: async ({ why }) => {
        render(await api('POST', `cascades/${encodeURIComponent(v.id)}/retry`, { workspace: m.name, why }));
        loadList();
      },
    });
  }

  // ---- Start.

  function start() {
    $('#signin-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const token = $('#token').value.trim();
      if (token) signIn(token);
    });
    $('#sign-out').addEventListener('click', () => signOut(''));
    $('#f-org').addEventListener('change', loadList);
    $('#f-state').addEventListener('change', loadList);
    $('#f-since').addEventListener('change', loadList);
    $('#f-ws').addEventListener('input', () => {
      clearTimeout(page.wsTimer);
      page.wsTimer = setTimeout(loadList, 250);
    });
    $('#why-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const ws = $('#why-ws').value.trim();
      if (!ws) return;
      const want = whyHash($('#why-org').value, ws);
      if (location.hash === want) route();
      else location.hash = want;
    });
    $('#a-org').addEventListener('change', loadAudit);
    $('#a-since').addEventListener('change', loadAudit);
    $('#a-refresh').addEventListener('click', loadAudit);
    $('#refresh').addEventListener('click', () => { loadList(); loadControls(); });
    $('#pause-btn').addEventListener('click', pause);
    $('#resume-btn').addEventListener('click', resume);
    $('#cancel-btn').addEventListener('click', cancel);
    $('#approve-btn').addEventListener('click', approve);
    $('#confirm-form').addEventListener('submit', submitDialog);
    $('#confirm-back').addEventListener('click', () => $('#confirm').close());
    window.addEventListener('hashchange', route);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) signIn(token);
    else signOut('');
  }

  start();
})();
