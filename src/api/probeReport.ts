/**
 * The probe report as one self-contained HTML page (no scripts, no external resources): the clean and robust
 * R@1/5/10 table with 95% CIs, ASR, cost, and an inline SVG bar chart of R@1 per attack, with the protocol
 * printed under the numbers.
 */
import type { ProbeDoc, RecallAtK } from './probes.js';

function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function cell(r: RecallAtK | undefined, K: 1 | 5 | 10): string {
  if (!r) return '<td>–</td>';
  const [lo, hi] = r.ci95[`R${K}`];
  return `<td>${r[`R${K}`].toFixed(1)} <small>[${lo.toFixed(1)}, ${hi.toFixed(1)}]</small></td>`;
}

export function renderProbeHtml(p: ProbeDoc): string {
  const r = p.report;
  const head = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Manyfold probe ${esc(p.id)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
small{color:#777}.protocol{background:#fafafa;border-left:3px solid #888;padding:.5em 1em}</style></head><body>`;
  if (!r) {
    return `${head}<h1>Probe ${esc(p.id)}</h1><p>Status: <b>${esc(p.status)}</b> (${esc(p.progress.stage)}, ${p.progress.done}/${p.progress.total})</p>${p.error ? `<p>${esc(p.error)}</p>` : ''}</body></html>`;
  }
  const rows: string[] = [];
  const row = (name: string, tm: string, dir: string, x: RecallAtK | undefined, asr?: number, q?: number, ms?: number) =>
    rows.push(`<tr><td>${esc(name)}</td><td>${esc(tm)}</td><td>${dir}</td>${cell(x, 1)}${cell(x, 5)}${cell(x, 10)}<td>${asr === undefined ? '–' : asr.toFixed(1)}</td><td>${q ?? '–'}</td><td>${ms ?? '–'}</td></tr>`);
  row('clean', '', 'image→text', r.clean.i2t);
  row('clean', '', 'text→image', r.clean.t2i);
  for (const a of r.attacks) {
    if (a.i2t) row(a.name, a.threatModel, 'image→text', a.i2t, a.i2t.asr, a.attackQueries, a.wallMs);
    if (a.t2i) row(a.name, a.threatModel, 'text→image', a.t2i, a.t2i.asr, a.attackQueries, a.wallMs);
  }
  if (r.worstCase.i2t) row('worst case', 'all', 'image→text', r.worstCase.i2t);
  if (r.worstCase.t2i) row('worst case', 'all', 'text→image', r.worstCase.t2i);

  // bar chart: R@1 per attack and direction, clean first
  const bars: { label: string; v: number }[] = [
    { label: 'clean i→t', v: r.clean.i2t.R1 },
    { label: 'clean t→i', v: r.clean.t2i.R1 },
    ...r.attacks.flatMap((a) => [...(a.i2t ? [{ label: `${a.name} i→t`, v: a.i2t.R1 }] : []), ...(a.t2i ? [{ label: `${a.name} t→i`, v: a.t2i.R1 }] : [])]),
  ];
  const W = 60;
  const H = 200;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${bars.length * W + 60}" height="${H + 90}" role="img" aria-label="R@1 per attack">
<text x="0" y="12" font-size="12">R@1 (%)</text>${[0, 50, 100].map((t) => `<text x="0" y="${20 + H - (t / 100) * H}" font-size="10">${t}</text><line x1="30" x2="${bars.length * W + 40}" y1="${16 + H - (t / 100) * H}" y2="${16 + H - (t / 100) * H}" stroke="#eee"/>`).join('')}
${bars
  .map((b, i) => {
    const h = (b.v / 100) * H;
    return `<rect x="${40 + i * W}" y="${16 + H - h}" width="${W - 14}" height="${h}" fill="${i < 2 ? '#4a7' : '#c64'}"/><text x="${40 + i * W}" y="${12 + H - h}" font-size="10">${b.v.toFixed(1)}</text><text transform="translate(${46 + i * W},${H + 24}) rotate(35)" font-size="10">${esc(b.label)}</text>`;
  })
  .join('')}</svg>`;
  return `${head}<h1>Attack probe ${esc(p.id)}</h1>
<p>Model <b>${esc(r.model)}</b>, namespace <b>${esc(r.namespace)}</b>, index ${esc(r.index)}; ${r.queries.images} image and ${r.queries.texts} text queries (${esc(r.queries.source)}); goal: leave the top-${r.k}; seed ${r.seed}; ${(r.wallMs / 1000).toFixed(1)} s (${esc(r.startedAt)}).</p>
<table><tr><th>attack</th><th>threat model</th><th>direction</th><th>R@1 [95% CI]</th><th>R@5</th><th>R@10</th><th>ASR %</th><th>attack queries</th><th>attack ms</th></tr>${rows.join('\n')}</table>
${svg}
<h2>Protocol</h2><p class="protocol">${esc(r.protocol)}</p>
<h2>Attack configurations</h2><pre>${esc(JSON.stringify(r.attacks.map((a) => ({ name: a.name, goal: a.goal, config: a.config })), null, 2))}</pre>
</body></html>`;
}
