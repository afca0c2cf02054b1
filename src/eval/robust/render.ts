/**
 * A robust-recall report as Markdown (what a release gate shows a person) and as one self-contained HTML page
 * (no scripts, no external resources: the API serves it and the dashboard shows it in a sandboxed frame). Both
 * print the protocol under the numbers. Every string from a report goes through `escapeHtml` in HTML and
 * through `escapeMarkdownCell` in tables: ids, captions and target names come from outside.
 */
import type { ConfidenceInterval } from '../bootstrap.js';
import type { SanityCheck } from './checks.js';
import { hasCurve, robustnessCurveSvg } from './curve.js';
import { escapeHtml } from './escape.js';
import type { DirectionFigures } from './metrics.js';
import type { RobustProbeReport } from './runner.js';

export { escapeHtml };

function escapeMarkdownCell(s: unknown): string {
  return String(s).replace(/[|\\`*_<>]/g, (c) => `\\${c}`).replace(/\n/g, ' ');
}

const ci = (c: ConfidenceInterval) => `${c.mean.toFixed(1)} [${c.lo.toFixed(1)}, ${c.hi.toFixed(1)}]`;

function figuresText(r: RobustProbeReport, d: DirectionFigures | undefined): string {
  if (!d) return '—';
  if (d.n === 0) return `no answers (${d.failed} failed)`;
  return r.ks.map((k) => ci(d.recall[`r${k}`])).join(' / ') + (d.failed ? ` (${d.failed} failed)` : '');
}

function header(r: RobustProbeReport): string {
  const src = Object.entries(r.source)
    .filter(([k]) => k !== 'kind' && k !== 'name')
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return (
    `${r.queries.images} image queries and ${r.queries.captions} caption queries (${r.queries.origin}); ${r.source.kind} source ${r.source.name}${src ? ` (${src})` : ''}; ` +
    `top-${r.topK}; gallery ${r.gallery === 'attacked' ? "attacked too (the papers' protocol)" : 'clean'}; images sent as ${r.imageSize}x${r.imageSize} ${r.imageTransport}; transfer surrogate: ${r.surrogate ?? 'none'}; attack goal: leave the top-${r.goalK}; seed ${r.seed}. ` +
    `R@K in percent with 95% bootstrap intervals.`
  );
}

/** a report with the offline evaluation's sanity checks (manyfold eval, experiments) */
type WithSanity = RobustProbeReport & { sanity?: { warnings: number; checks: SanityCheck[] } };

export interface RenderOptions {
  /** the command that produced the report, printed under the title */
  command?: string;
}

export function renderRobustMarkdown(r: WithSanity, o: RenderOptions = {}): string {
  const md = escapeMarkdownCell;
  const head = `| | threat model | TR R@${r.ks.join('/')} | IR R@${r.ks.join('/')} | ASR TR / IR (at ${r.goalK}) | attack cost: system queries / model passes |\n|---|---|---|---|---|---|`;
  const rows = [
    `| clean | — | ${figuresText(r, r.clean.tr)} | ${figuresText(r, r.clean.ir)} | | |`,
    ...r.attacks.map((a) => `| ${md(a.label)} | ${a.threatModel} | ${figuresText(r, a.tr)} | ${figuresText(r, a.ir)} | ${a.tr?.asr.asr ?? '—'} / ${a.ir?.asr.asr ?? '—'} | ${a.attackQueries} / ${a.modelQueries} |`),
    `| **robust (worst case)** | | ${figuresText(r, r.robust.tr)} | ${figuresText(r, r.robust.ir)} | | |`,
  ];
  const s = r.sourceStats;
  const warns = r.sanity?.checks.filter((c) => c.status === 'warn') ?? [];
  return [
    `# Robust recall of ${md(r.source.name)}${r.partial ? ' (PARTIAL)' : ''}`,
    '',
    ...(o.command ? ['```', o.command, '```', ''] : []),
    ...(r.partial ? [`**Partial report**: ${md(r.error)}`, ''] : []),
    ...(warns.length ? [`> **Sanity warnings (${warns.length})**`, ...warns.map((w) => `> - **${w.id}**: ${md(w.message)}`), ''] : []),
    md(header(r)),
    '',
    head,
    ...rows,
    '',
    ...(s ? [`Target: ${s.requests} requests (${s.retries} retries), latency p50 ${s.latencyMs.p50.toFixed(0)} ms, p99 ${s.latencyMs.p99.toFixed(0)} ms; wall ${(r.wallMs / 1000).toFixed(1)} s.`, ''] : [`Wall ${(r.wallMs / 1000).toFixed(1)} s.`, '']),
    `Protocol: ${md(r.protocol)}`,
    '',
    ...(r.sanity ? ['## Sanity checks', '', ...r.sanity.checks.map((c) => `- ${c.status === 'warn' ? '**WARN**' : c.status} \`${c.id}\`: ${md(c.message)}`), ''] : []),
  ].join('\n');
}

/**
 * the report page; `title` names the job (a probe id) when there is one; `sections` are extra HTML blocks rendered
 * by the caller (adversarial examples need image encoding, which the edge does not have)
 */
export function renderRobustHtml(r: WithSanity, title = `Robust recall of ${r.source.name}`, o: RenderOptions & { sections?: readonly string[] } = {}): string {
  const cell = (d: DirectionFigures | undefined, k: number) => {
    const c = d?.recall[`r${k}`];
    return c ? `<td>${c.mean.toFixed(1)} <small>[${c.lo.toFixed(1)}, ${c.hi.toFixed(1)}]</small></td>` : '<td>–</td>';
  };
  const rows: string[] = [];
  const row = (name: string, tm: string, dir: string, d: DirectionFigures | undefined, asr?: number, q?: string, ms?: number) =>
    rows.push(`<tr><td>${escapeHtml(name)}</td><td>${escapeHtml(tm)}</td><td>${dir}</td>${r.ks.map((k) => cell(d, k)).join('')}<td>${asr === undefined ? '–' : asr.toFixed(1)}</td><td>${q ?? '–'}</td><td>${ms ?? '–'}</td></tr>`);
  row('clean', '', 'image→text', r.clean.tr);
  row('clean', '', 'text→image', r.clean.ir);
  for (const a of r.attacks) {
    if (a.tr) row(a.label, a.threatModel, 'image→text', a.tr, a.tr.asr.asr, `${a.attackQueries} / ${a.modelQueries}`, a.wallMs);
    if (a.ir) row(a.label, a.threatModel, 'text→image', a.ir, a.ir.asr.asr, `${a.attackQueries} / ${a.modelQueries}`, a.wallMs);
  }
  if (r.robust.tr) row('robust (worst case)', 'all', 'image→text', r.robust.tr);
  if (r.robust.ir) row('robust (worst case)', 'all', 'text→image', r.robust.ir);

  const r1 = (d: DirectionFigures | undefined) => d?.recall.r1?.mean;
  const bars = [
    { label: 'clean i→t', v: r1(r.clean.tr), clean: true },
    { label: 'clean t→i', v: r1(r.clean.ir), clean: true },
    ...r.attacks.flatMap((a) => [
      { label: `${a.label} i→t`, v: r1(a.tr), clean: false },
      { label: `${a.label} t→i`, v: r1(a.ir), clean: false },
    ]),
  ].filter((b): b is { label: string; v: number; clean: boolean } => b.v !== undefined);
  const W = 60;
  const H = 200;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${bars.length * W + 60}" height="${H + 90}" role="img" aria-label="R@1 per attack">
<text x="0" y="12" font-size="12">R@1 (%)</text>${[0, 50, 100].map((t) => `<text x="0" y="${20 + H - (t / 100) * H}" font-size="10">${t}</text><line x1="30" x2="${bars.length * W + 40}" y1="${16 + H - (t / 100) * H}" y2="${16 + H - (t / 100) * H}" stroke="#eee"/>`).join('')}
${bars
  .map((b, i) => {
    const h = (b.v / 100) * H;
    return `<rect x="${40 + i * W}" y="${16 + H - h}" width="${W - 14}" height="${h}" fill="${b.clean ? '#4a7' : '#c64'}"/><text x="${40 + i * W}" y="${12 + H - h}" font-size="10">${b.v.toFixed(1)}</text><text transform="translate(${46 + i * W},${H + 24}) rotate(35)" font-size="10">${escapeHtml(b.label)}</text>`;
  })
  .join('')}</svg>`;
  const s = r.sourceStats;
  const warns = r.sanity?.checks.filter((c) => c.status === 'warn') ?? [];
  const status = (c: SanityCheck) => `<b class="${c.status}">${c.status.toUpperCase()}</b>`;
  return `${pageHead(title)}<h1>${escapeHtml(title)}${r.partial ? ' (PARTIAL)' : ''}</h1>
${o.command ? `<pre>${escapeHtml(o.command)}</pre>` : ''}
${r.partial ? `<p><b>Partial report</b>: ${escapeHtml(r.error)}</p>` : ''}
${warns.length ? `<div class="warn"><b>Sanity warnings (${warns.length})</b><ul>${warns.map((w) => `<li><b>${escapeHtml(w.id)}</b>: ${escapeHtml(w.message)}</li>`).join('')}</ul></div>` : ''}
<p>${escapeHtml(header(r))} ${(r.wallMs / 1000).toFixed(1)} s from ${escapeHtml(r.startedAt)}.</p>
<table><tr><th>attack</th><th>threat model</th><th>direction</th>${r.ks.map((k) => `<th>R@${k} [95% CI]</th>`).join('')}<th>ASR %</th><th>attack cost: system queries / model passes</th><th>attack ms</th></tr>${rows.join('\n')}</table>
${svg}
${hasCurve(r) ? `<h2>Robustness curves</h2><div>${robustnessCurveSvg(r, 'tr')}${robustnessCurveSvg(r, 'ir')}</div>` : ''}
${(o.sections ?? []).join('\n')}
${s ? `<p>Target: ${s.requests} requests (${s.retries} retries), latency p50 ${s.latencyMs.p50.toFixed(0)} ms, p99 ${s.latencyMs.p99.toFixed(0)} ms.</p>` : ''}
<h2>Protocol</h2><p class="protocol">${escapeHtml(r.protocol)}</p>
<h2>Attack configurations</h2><pre>${escapeHtml(JSON.stringify(r.attacks.map((a) => ({ label: a.label, threatModel: a.threatModel, goal: a.goal, config: a.config })), null, 2))}</pre>
${r.sanity ? `<h2>Sanity checks</h2><ul>${r.sanity.checks.map((c) => `<li>${status(c)} <code>${escapeHtml(c.id)}</code>: ${escapeHtml(c.message)}</li>`).join('')}</ul>` : ''}
</body></html>`;
}

/** a page for a job without a report yet (queued, running, failed) */
export function renderStatusHtml(title: string, lines: readonly string[]): string {
  return `${pageHead(title)}<h1>${escapeHtml(title)}</h1>${lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('')}</body></html>`;
}

function pageHead(title: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
small{color:#777}.protocol{background:#fafafa;border-left:3px solid #888;padding:.5em 1em}
.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.5em 1em}b.ok{color:#2a7}b.warn{color:#c60}b.skipped{color:#888}
.ex{display:flex;gap:18px;align-items:flex-start;border-top:1px solid #eee;padding:10px 0}.ex figure{margin:0;text-align:center;font-size:11px}
.ex img{image-rendering:pixelated;border:1px solid #ccc}.cap del{color:#a33}.cap ins{color:#273;text-decoration:none;font-weight:bold}</style></head><body>`;
}
