// Manyfold dashboard: a plain ES module (no build step, no dependencies, no external requests). It calls the
// JSON API of the server it was loaded from with the bearer key the user enters (kept in sessionStorage).
// Every piece of server data is put into the page with textContent / attributes, never as HTML; the probe
// report (the server's own HTML) is shown in a sandboxed iframe.

const KEY_STORAGE = 'manyfold.apiKey';
const POLL_MS = 1000;
const SVG_NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#1f5fbf', '#c0552f', '#3a8f5c', '#8a4fbf', '#a87800', '#0f7f86', '#b3261e', '#5a636e'];
const SUITES = {
  quick: [
    { name: 'pgd', eps: 2, steps: 3 },
    { name: 'text', maxWordsChanged: 1 },
    { name: 'blackbox-text', maxQueries: 20 },
  ],
  sweep: [1, 2, 4, 8].map((eps) => ({ name: 'pgd', eps, steps: 3 })),
};
const DIRS = [
  ['tr', 'image→text'],
  ['ir', 'text→image'],
];

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
let apiKey = sessionStorage.getItem(KEY_STORAGE) ?? '';

// ------------------------------------------------------------------------------------------ DOM helpers
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c);
  return el;
}
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'text') el.textContent = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) el.append(c);
  return el;
}
function setStatus(id, text, ok = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('ok', ok);
}
function setError(id, text) {
  const el = $(id);
  el.textContent = text ?? '';
  el.hidden = !text;
}
const pct = (v) => (typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(1)}%` : '–');

// ------------------------------------------------------------------------------------------ API client
class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function explain(status, body, retryAfter) {
  const msg = body?.error?.message;
  const rid = body?.error?.requestId ? ` (request id ${body.error.requestId})` : '';
  if (status === 401) return 'The server rejected this API key. Check it and enter it again.';
  if (status === 403) return `Not allowed: ${msg ?? 'this key lacks the required scope'}.`;
  if (status === 429) return `Rate limited${retryAfter ? `; retry in ${retryAfter} s` : ''}: ${msg ?? 'too many requests'}.`;
  if (status >= 500) return `The server failed: ${msg ?? `HTTP ${status}`}${rid}.`;
  return `${msg ?? `HTTP ${status}`}${body?.error?.field ? ` [${body.error.field}]` : ''}`;
}

/** fetch against this server (relative URL) with the bearer key; JSON errors become ApiFailure */
async function api(method, path, { json, as = 'json' } = {}) {
  if (!apiKey) throw new ApiFailure(0, 'no_key', 'Enter an API key first.');
  const headers = { Authorization: `Bearer ${apiKey}` };
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
  } catch {
    throw new ApiFailure(0, 'network', 'Cannot reach the API server.');
  }
  if (!r.ok) {
    let body;
    try {
      body = await r.json();
    } catch {
      body = undefined;
    }
    throw new ApiFailure(r.status, body?.error?.code ?? `http_${r.status}`, explain(r.status, body, r.headers.get('retry-after')));
  }
  if (as === 'blob') return r.blob();
  if (as === 'text') return r.text();
  return r.json();
}

/** a small concurrency limiter for thumbnail and detail requests */
function limiter(n) {
  let active = 0;
  const waiting = [];
  const next = () => {
    if (active >= n || waiting.length === 0) return;
    active++;
    const { fn, ok, fail } = waiting.shift();
    fn().then(ok, fail).finally(() => {
      active--;
      next();
    });
  };
  return (fn) =>
    new Promise((ok, fail) => {
      waiting.push({ fn, ok, fail });
      next();
    });
}
const limited = limiter(4);

// ------------------------------------------------------------------------------------------ key
async function connect() {
  setStatus('key-status', apiKey ? 'Checking the key…' : '');
  $('model-info').textContent = 'Not connected';
  if (!apiKey) return false;
  try {
    const m = await api('GET', 'v1/models');
    const active = (m.models ?? []).find((x) => x.active);
    const desc = active ? `${active.id} (${active.preset}, ${active.embedDim}-d, ${active.imageSize}px)` : m.active;
    $('model-info').textContent = `Model ${desc}${m.activation ? ' · activation running' : ''}`;
    setStatus('key-status', 'Key accepted.', true);
    return true;
  } catch (e) {
    setStatus('key-status', e.message);
    return false;
  }
}

function forget() {
  apiKey = '';
  sessionStorage.removeItem(KEY_STORAGE);
  /** @type {HTMLInputElement} */ ($('api-key')).value = '';
  setStatus('key-status', 'Key forgotten.');
  $('model-info').textContent = 'Not connected';
  clearResults('No search yet.');
  stopPolling();
  probeEls.clear();
  details.clear();
  $('probes').replaceChildren();
  $('probes-empty').textContent = 'Enter a key with the probe scope to list probes.';
  $('probes-empty').hidden = false;
  for (const u of thumbs.values()) u.then((x) => x && URL.revokeObjectURL(x));
  thumbs.clear();
}

// ------------------------------------------------------------------------------------------ search
/** @type {File | undefined} */
let queryFile;
let searchSeq = 0;
/** sha256 -> Promise<object URL | undefined> */
const thumbs = new Map();

function clearResults(emptyText) {
  $('results').replaceChildren();
  $('results-empty').textContent = emptyText;
  $('results-empty').hidden = false;
}

function readAsBase64(file) {
  return new Promise((ok, fail) => {
    const fr = new FileReader();
    fr.onload = () => ok(String(fr.result).replace(/^data:[^,]*,/, ''));
    fr.onerror = () => fail(new ApiFailure(0, 'file', `Cannot read ${file.name}.`));
    fr.readAsDataURL(file);
  });
}

function onImageChosen() {
  const input = /** @type {HTMLInputElement} */ ($('q-image'));
  queryFile = input.files?.[0];
  const wrap = $('q-preview-wrap');
  const img = /** @type {HTMLImageElement} */ ($('q-preview'));
  if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
  if (queryFile) {
    img.src = URL.createObjectURL(queryFile);
    img.alt = `query image ${queryFile.name}`;
    wrap.hidden = false;
    /** @type {HTMLInputElement} */ ($('q-text')).disabled = true;
  } else {
    img.removeAttribute('src');
    wrap.hidden = true;
    /** @type {HTMLInputElement} */ ($('q-text')).disabled = false;
  }
}

function clearImage() {
  /** @type {HTMLInputElement} */ ($('q-image')).value = '';
  onImageChosen();
  $('q-text').focus();
}

async function onSearch(ev) {
  ev.preventDefault();
  setError('search-error', '');
  const text = /** @type {HTMLInputElement} */ ($('q-text')).value.trim();
  const target = /** @type {HTMLSelectElement} */ ($('q-target')).value;
  const topK = Number(/** @type {HTMLInputElement} */ ($('q-topk')).value || 8);
  const namespace = /** @type {HTMLInputElement} */ ($('q-ns')).value.trim();
  if (!queryFile && !text) return setError('search-error', 'Type a text query or choose an image.');
  if (!Number.isInteger(topK) || topK < 1 || topK > 100) return setError('search-error', 'Top K must be a whole number from 1 to 100.');
  if (namespace && !/^[A-Za-z0-9][A-Za-z0-9_.]{0,31}$/.test(namespace)) return setError('search-error', 'Namespace: 1–32 characters from A–Z, a–z, 0–9, _ and ., starting with a letter or digit.');
  const seq = ++searchSeq;
  const btn = /** @type {HTMLButtonElement} */ ($('q-submit'));
  btn.disabled = true;
  $('results').setAttribute('aria-busy', 'true');
  setStatus('search-status', queryFile ? `Searching with ${queryFile.name}…` : 'Searching…');
  try {
    const body = { topK, ...(target ? { target } : {}), ...(namespace ? { namespace } : {}) };
    if (queryFile) body.image = await readAsBase64(queryFile);
    else body.text = text;
    const res = await api('POST', 'v1/search', { json: body });
    if (seq !== searchSeq) return;
    renderResults(res);
  } catch (e) {
    if (seq !== searchSeq) return;
    setStatus('search-status', '');
    setError('search-error', e.message);
  } finally {
    if (seq === searchSeq) {
      btn.disabled = false;
      $('results').removeAttribute('aria-busy');
    }
  }
}

function renderResults(res) {
  const list = $('results');
  const results = res.results ?? [];
  const q = queryFile ? 'image' : 'text';
  setStatus('search-status', `${results.length} result${results.length === 1 ? '' : 's'} for the ${q} query · target ${res.target} · namespace ${res.namespace} · model ${res.model} · ${res.tookMs} ms`, true);
  if (results.length === 0) {
    clearResults('No results: the namespace may be empty for this model, or nothing matched the filter.');
    return;
  }
  $('results-empty').hidden = true;
  const items = new Map(); // item id -> Promise<item | undefined>, one request per item per search
  const itemOf = (id) => {
    if (!items.has(id)) {
      const qs = res.namespace && res.namespace !== 'default' ? `?namespace=${encodeURIComponent(res.namespace)}` : '';
      items.set(id, limited(() => api('GET', `v1/items/${encodeURIComponent(id)}${qs}`)).then((r) => r.item, () => undefined));
    }
    return items.get(id);
  };
  list.replaceChildren(
    ...results.map((r, i) => {
      const thumb = h('div', { class: 'thumb' }, h('span', { text: 'loading…' }));
      const caption = h('p', { class: 'caption' }, r.caption ?? '');
      const meta = Object.entries(r.metadata ?? {});
      const card = h(
        'li',
        { class: 'card', 'data-id': r.id, 'data-rank': i + 1 },
        thumb,
        h(
          'div',
          { class: 'body' },
          h('div', { class: 'head' }, h('span', { class: 'id', text: r.id }), h('span', { class: 'rank', text: `#${i + 1}` })),
          h('span', { class: 'score', text: `score ${Number(r.score).toFixed(4)}` }),
          caption,
          meta.length ? h('dl', {}, ...meta.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: Array.isArray(v) ? v.join(', ') : String(v) })])) : null,
        ),
      );
      itemOf(r.id).then(async (item) => {
        if (!r.caption && item?.captions?.length) caption.textContent = item.captions[0];
        if (!item?.image) {
          thumb.replaceChildren(h('span', { text: item ? 'no image' : 'item unavailable' }));
          return;
        }
        const url = await thumbnail(item.image.sha256, r.id, res.namespace);
        if (!url) return thumb.replaceChildren(h('span', { text: 'image unavailable' }));
        const alt = r.caption ?? item.captions?.[0] ?? `image of ${r.id}`;
        thumb.replaceChildren(h('img', { src: url, alt, width: item.image.width, height: item.image.height, decoding: 'async' }));
      });
      return card;
    }),
  );
}

function thumbnail(sha, id, namespace) {
  if (!thumbs.has(sha)) {
    const qs = namespace && namespace !== 'default' ? `?namespace=${encodeURIComponent(namespace)}` : '';
    const p = limited(() => api('GET', `v1/items/${encodeURIComponent(id)}/image${qs}`, { as: 'blob' })).then(
      (b) => URL.createObjectURL(b),
      () => {
        thumbs.delete(sha); // retry on the next search
        return undefined;
      },
    );
    thumbs.set(sha, p);
  }
  return thumbs.get(sha);
}

// ------------------------------------------------------------------------------------------ probes
/** probe id -> { li, parts } */
const probeEls = new Map();
/** probe id -> Promise<full probe doc> (finished probes only: their reports do not change) */
const details = new Map();
let pollTimer;
let loading = false;

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = undefined;
}

async function loadProbes() {
  if (!apiKey || loading) return;
  loading = true;
  stopPolling();
  let active = false;
  try {
    const { probes } = await api('GET', 'v1/probes');
    setError('probe-error', '');
    renderProbes(probes);
    active = probes.some((p) => p.status === 'queued' || p.status === 'running');
  } catch (e) {
    if (e.status === 403) {
      $('probes').replaceChildren();
      probeEls.clear();
      $('probes-empty').textContent = 'This key lacks the probe scope: probes are not shown.';
      $('probes-empty').hidden = false;
    } else {
      setError('probe-error', e.message);
      active = e.status === 429 || e.status === 0;
    }
  } finally {
    loading = false;
  }
  if (active && apiKey) pollTimer = setTimeout(loadProbes, POLL_MS);
}

function renderProbes(probes) {
  const list = $('probes');
  $('probes-empty').textContent = 'No probes yet. Start one above.';
  $('probes-empty').hidden = probes.length > 0;
  const seen = new Set();
  probes.forEach((p, i) => {
    seen.add(p.id);
    let entry = probeEls.get(p.id);
    if (!entry) {
      entry = createProbeEl(p);
      probeEls.set(p.id, entry);
    }
    updateProbeEl(entry, p);
    if (list.children[i] !== entry.li) list.insertBefore(entry.li, list.children[i] ?? null);
  });
  for (const [id, entry] of probeEls) {
    if (!seen.has(id)) {
      entry.li.remove();
      probeEls.delete(id);
    }
  }
}

function createProbeEl(p) {
  const badge = h('span', { class: 'badge' });
  const progress = h('progress', { max: 1, value: 0, 'aria-label': `progress of probe ${p.id}` });
  const stage = h('span', { class: 'stage' });
  const summary = h('p', { class: 'summary' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const chart = h('div', { class: 'chart' });
  const cancel = h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => removeProbe(p.id, 'cancel') });
  const del = h('button', { type: 'button', class: 'secondary', text: 'Delete', 'aria-label': `delete probe ${p.id}`, onclick: () => removeProbe(p.id, 'delete') });
  const report = h('button', { type: 'button', text: 'View report', onclick: () => openReport(p.id) });
  const when = h('time', { class: 'when', datetime: p.createdAt, text: new Date(p.createdAt).toLocaleString() });
  const attacks = (p.request?.attacks ?? []).map((a) => `${a.name}${a.eps !== undefined ? ` ε${a.eps}` : ''}`).join(', ') || 'default suite';
  const li = h(
    'li',
    { class: 'probe', 'data-id': p.id, 'aria-label': `probe ${p.id}` },
    h('div', { class: 'head' }, h('span', { class: 'pid', text: p.id }), badge, when, h('span', { class: 'when', text: `${p.request?.pairs ? `${p.request.pairs.length} pairs` : `sample ${p.request?.sample ?? 8}`} · ${attacks}` }), h('span', { class: 'actions' }, report, cancel, del)),
    h('div', {}, progress, stage),
    summary,
    error,
    chart,
  );
  return { li, parts: { badge, progress, stage, summary, error, chart, cancel, del, report }, status: '' };
}

function updateProbeEl(entry, p) {
  const { badge, progress, stage, summary, error, chart, cancel, del, report } = entry.parts;
  badge.textContent = p.status;
  badge.className = `badge ${p.status}`;
  entry.li.dataset.status = p.status;
  const total = Math.max(1, p.progress?.total ?? 0);
  progress.max = total;
  progress.value = Math.min(total, p.progress?.done ?? 0);
  progress.setAttribute('aria-valuetext', `${p.progress?.done ?? 0} of ${p.progress?.total ?? 0}, ${p.progress?.stage ?? ''}`);
  stage.textContent = `${p.progress?.done ?? 0}/${p.progress?.total ?? 0} · ${p.progress?.stage ?? ''}`;
  const live = p.status === 'queued' || p.status === 'running';
  cancel.hidden = !live;
  del.hidden = live;
  report.hidden = p.status !== 'succeeded';
  error.hidden = !p.error;
  error.textContent = p.error ?? '';
  if (p.summary) {
    const c = p.summary.clean ?? {};
    const w = p.summary.robust ?? {};
    summary.textContent = `R@1 clean: image→text ${pct(c.trR1)}, text→image ${pct(c.irR1)} · worst case under attack: image→text ${pct(w.trR1)}, text→image ${pct(w.irR1)}`;
  } else summary.textContent = live ? 'Running; the report appears here when it finishes.' : '';
  if (p.status === 'succeeded' && entry.status !== 'succeeded') {
    chart.replaceChildren(h('span', { class: 'help', text: 'loading the report…' }));
    probeDetail(p.id)
      .then((full) => chart.replaceChildren(full.report ? robustnessChart(full.report, p.id) : h('span', { class: 'help', text: 'no report' })))
      .catch((e) => chart.replaceChildren(h('span', { class: 'error', text: e.message })));
  } else if (p.status !== 'succeeded') chart.replaceChildren();
  entry.status = p.status;
}

function probeDetail(id) {
  if (!details.has(id)) {
    const d = limited(() => api('GET', `v1/probes/${encodeURIComponent(id)}`)).then((r) => r.probe);
    d.catch(() => details.delete(id));
    details.set(id, d);
  }
  return details.get(id);
}

async function onStartProbe(ev) {
  ev.preventDefault();
  setError('probe-error', '');
  const sample = Number(/** @type {HTMLInputElement} */ ($('p-sample')).value || 4);
  const suite = /** @type {HTMLSelectElement} */ ($('p-suite')).value;
  if (!Number.isInteger(sample) || sample < 1 || sample > 64) return setError('probe-error', 'Sample must be a whole number from 1 to 64.');
  const btn = /** @type {HTMLButtonElement} */ ($('p-start'));
  btn.disabled = true;
  try {
    const { probe } = await api('POST', 'v1/probes', { json: { sample, attacks: SUITES[suite] ?? SUITES.quick, resamples: 200 } });
    setStatus('probe-status', `Started probe ${probe.id} (${probe.status}).`, true);
    await loadProbes();
  } catch (e) {
    setStatus('probe-status', '');
    setError('probe-error', e.message);
  } finally {
    btn.disabled = false;
  }
}

async function removeProbe(id, what) {
  if (what === 'delete' && !window.confirm(`Delete probe ${id} and its report?`)) return;
  try {
    const r = await api('DELETE', `v1/probes/${encodeURIComponent(id)}`);
    setStatus('probe-status', `Probe ${id} ${r.status}.`, true);
    details.delete(id);
    await loadProbes();
  } catch (e) {
    setError('probe-error', e.message);
  }
}

let reportUrl;
async function openReport(id) {
  const dlg = /** @type {HTMLDialogElement} */ ($('report-dialog'));
  try {
    const html = await api('GET', `v1/probes/${encodeURIComponent(id)}?format=html`, { as: 'text' });
    /** @type {HTMLIFrameElement} */ ($('report-frame')).srcdoc = html;
    if (reportUrl) URL.revokeObjectURL(reportUrl);
    reportUrl = URL.createObjectURL(new Blob([html], { type: 'text/html' }));
    const a = /** @type {HTMLAnchorElement} */ ($('report-open'));
    a.href = reportUrl;
    a.download = `probe-${id}.html`;
    $('report-h').textContent = `Probe report ${id}`;
    dlg.showModal();
  } catch (e) {
    setError('probe-error', e.message);
  }
}

// ------------------------------------------------------------------------------------------ charts
/** R@1 of a direction's figures (the report's recall.r1 interval), or undefined when not measured */
function r1Of(d) {
  return d?.recall?.r1?.mean;
}

/** ε of an attack in /255 units (the report's resolved config holds it in [0, 1]) */
function epsOf(a) {
  const e = a.config?.eps;
  if (typeof e !== 'number' || !Number.isFinite(e)) return undefined;
  return Math.round((e <= 1 ? e * 255 : e) * 100) / 100;
}

/**
 * Recall vs ε per attack and direction when some attack was run at several ε (a robustness curve, with the
 * clean R@1 at ε = 0); otherwise clean vs robust R@1 bars per attack and direction.
 */
function robustnessChart(report, id) {
  const groups = new Map();
  for (const a of report.attacks ?? []) {
    for (const [d, label] of DIRS) {
      if (!a[d]) continue;
      const key = `${a.name} ${label}`;
      if (!groups.has(key)) groups.set(key, { key, name: a.name, dir: d, points: [] });
      groups.get(key).points.push({ eps: epsOf(a), r1: r1Of(a[d]), asr: a[d].asr?.asr });
    }
  }
  const curve = [...groups.values()].some((g) => new Set(g.points.map((p) => p.eps).filter((e) => e !== undefined)).size >= 2);
  const wrap = h('figure', { class: 'figure', style: 'margin:0' });
  const titleId = `chart-${id}-t`;
  const descId = `chart-${id}-d`;
  let svg;
  const rows = [];
  if (curve) {
    const series = [...groups.values()]
      .filter((g) => g.points.some((p) => p.eps !== undefined))
      .map((g) => ({ ...g, points: [{ eps: 0, r1: r1Of(report.clean?.[g.dir]) ?? 0, clean: true }, ...g.points.filter((p) => p.eps !== undefined)].sort((a, b) => a.eps - b.eps) }));
    svg = lineChart(series, titleId, descId);
    for (const g of series) for (const p of g.points) rows.push([g.key, p.clean ? '0 (clean)' : String(p.eps), pct(p.r1)]);
    wrap.append(svg, legend(series.map((g, i) => [g.key, COLORS[i % COLORS.length]])));
    wrap.append(dataTable(['series', 'ε (/255)', 'R@1'], rows));
  } else {
    const bars = [...groups.values()].map((g) => ({ key: `${g.key}${g.points[0].eps !== undefined ? ` ε${g.points[0].eps}` : ''}`, clean: r1Of(report.clean?.[g.dir]) ?? 0, robust: g.points[0].r1 ?? 0 }));
    for (const [d, label] of DIRS) if (report.robust?.[d]) bars.push({ key: `worst case ${label}`, clean: r1Of(report.clean?.[d]) ?? 0, robust: r1Of(report.robust[d]) ?? 0 });
    svg = barChart(bars, titleId, descId);
    for (const b of bars) rows.push([b.key, pct(b.clean), pct(b.robust)]);
    wrap.append(svg, legend([['clean R@1', 'var(--clean)'], ['robust R@1 (under attack)', 'var(--robust)']]));
    wrap.append(dataTable(['attack · direction', 'clean R@1', 'robust R@1'], rows));
  }
  wrap.append(h('figcaption', { class: 'help', text: `${report.queries?.images ?? 0} image and ${report.queries?.captions ?? 0} text queries; goal: the gold leaves the top-${report.goalK}; model ${report.source?.name}.` }));
  return wrap;
}

function legend(entries) {
  return h('ul', { class: 'legend', 'aria-hidden': 'true' }, ...entries.map(([label, color]) => h('li', {}, h('span', { class: 'sw', style: `background:${color}` }), label)));
}

function dataTable(head, rows) {
  return h('details', {}, h('summary', { text: 'Data table' }), h('table', {}, h('thead', {}, h('tr', {}, ...head.map((x) => h('th', { scope: 'col', text: x })))), h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((x) => h('td', { text: x })))))));
}

function frame(W, H, m, titleId, descId, title, desc) {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-labelledby': `${titleId} ${descId}` }, s('title', { id: titleId, text: title }), s('desc', { id: descId, text: desc }));
  const y = (v) => m.t + (1 - v / 100) * (H - m.t - m.b);
  for (const t of [0, 25, 50, 75, 100]) {
    svg.append(s('line', { class: 'grid-line', x1: m.l, x2: W - m.r, y1: y(t), y2: y(t) }), s('text', { x: m.l - 6, y: y(t) + 4, 'text-anchor': 'end', text: String(t) }));
  }
  svg.append(s('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }), s('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
  svg.append(s('text', { x: 12, y: m.t + (H - m.t - m.b) / 2, transform: `rotate(-90 12 ${m.t + (H - m.t - m.b) / 2})`, 'text-anchor': 'middle', text: 'R@1 (%)' }));
  return { svg, y };
}

function lineChart(series, titleId, descId) {
  const W = 560;
  const H = 240;
  const m = { l: 48, r: 16, t: 14, b: 40 };
  const xs = [...new Set(series.flatMap((g) => g.points.map((p) => p.eps)))].sort((a, b) => a - b);
  const maxX = Math.max(...xs, 1);
  const desc = series.map((g) => `${g.key}: ${g.points.map((p) => `ε ${p.eps} → ${pct(p.r1)}`).join(', ')}`).join('; ');
  const { svg, y } = frame(W, H, m, titleId, descId, 'Robustness curve: R@1 vs ε', desc);
  const x = (v) => m.l + (v / maxX) * (W - m.l - m.r);
  for (const t of xs) svg.append(s('text', { x: x(t), y: H - m.b + 16, 'text-anchor': 'middle', text: String(t) }));
  svg.append(s('text', { x: m.l + (W - m.l - m.r) / 2, y: H - 6, 'text-anchor': 'middle', text: 'ε (L∞ budget, /255)' }));
  series.forEach((g, i) => {
    const color = COLORS[i % COLORS.length];
    svg.append(s('polyline', { class: 'series', 'data-series': g.key, fill: 'none', stroke: color, 'stroke-width': 2, points: g.points.map((p) => `${x(p.eps).toFixed(1)},${y(p.r1).toFixed(1)}`).join(' ') }));
    for (const p of g.points) svg.append(s('circle', { cx: x(p.eps).toFixed(1), cy: y(p.r1).toFixed(1), r: 3.5, fill: color }, s('title', { text: `${g.key}, ε ${p.eps}: R@1 ${pct(p.r1)}` })));
  });
  return svg;
}

function barChart(bars, titleId, descId) {
  const G = 76;
  const m = { l: 48, r: 90, t: 14, b: 84 };
  const W = Math.max(320, m.l + m.r + bars.length * G);
  const H = 270;
  const desc = bars.map((b) => `${b.key}: clean ${pct(b.clean)}, robust ${pct(b.robust)}`).join('; ');
  const { svg, y } = frame(W, H, m, titleId, descId, 'Clean vs robust R@1 per attack', desc);
  const bw = (G - 20) / 2;
  bars.forEach((b, i) => {
    const x0 = m.l + 8 + i * G;
    for (const [k, v, color] of [
      ['clean', b.clean, 'var(--clean)'],
      ['robust', b.robust, 'var(--robust)'],
    ]) {
      const x = k === 'clean' ? x0 : x0 + bw + 2;
      const val = Number(v) || 0;
      svg.append(s('rect', { class: `bar ${k}`, x, y: y(val), width: bw, height: Math.max(0, H - m.b - y(val)), fill: color }, s('title', { text: `${b.key}: ${k} R@1 ${pct(val)}` })));
      svg.append(s('text', { x: x + bw / 2, y: y(val) - 3, 'text-anchor': 'middle', 'font-size': 9, text: val.toFixed(0) }));
    }
    svg.append(s('text', { transform: `translate(${x0 + 4},${H - m.b + 12}) rotate(30)`, 'font-size': 10, text: b.key }));
  });
  return svg;
}

// ------------------------------------------------------------------------------------------ wiring
async function onKey(ev) {
  ev.preventDefault();
  const v = /** @type {HTMLInputElement} */ ($('api-key')).value.trim();
  if (!v) return setStatus('key-status', 'Enter a key.');
  apiKey = v;
  sessionStorage.setItem(KEY_STORAGE, v);
  details.clear();
  if (await connect()) await loadProbes();
}

function init() {
  $('key-form').addEventListener('submit', onKey);
  $('key-forget').addEventListener('click', forget);
  $('search-form').addEventListener('submit', onSearch);
  $('q-image').addEventListener('change', onImageChosen);
  $('q-clear').addEventListener('click', clearImage);
  $('probe-form').addEventListener('submit', onStartProbe);
  $('p-refresh').addEventListener('click', () => loadProbes());
  $('report-close').addEventListener('click', () => /** @type {HTMLDialogElement} */ ($('report-dialog')).close());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && pollTimer === undefined && apiKey) loadProbes();
  });
  if (apiKey) {
    /** @type {HTMLInputElement} */ ($('api-key')).value = apiKey;
    connect().then((ok) => ok && loadProbes());
  }
  document.body.dataset.ready = 'true';
}

init();
