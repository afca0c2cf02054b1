/**
 * Robustness curve as a self-contained inline SVG: recall@K (y, 0-100) against eps in /255 (x), one polyline per
 * image attack run at several budgets (eps 0 = the clean value); eps-free attacks (text) are dashed horizontal
 * lines. Dependency-free (the API renders reports at the edge too).
 */
import { escapeHtml as esc } from './escape.js';
import type { Direction, RobustProbeReport } from './runner.js';

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

/** whether a curve says anything: some attack ran at two budgets or more */
export function hasCurve(r: RobustProbeReport): boolean {
  const counts = new Map<string, number>();
  for (const a of r.attacks) if (a.spec.eps !== undefined) counts.set(a.name, (counts.get(a.name) ?? 0) + 1);
  return [...counts.values()].some((n) => n >= 2);
}

export function robustnessCurveSvg(r: RobustProbeReport, dir: Direction = 'tr', k = 1, opts: { width?: number; height?: number } = {}): string {
  const W = opts.width ?? 560;
  const H = opts.height ?? 340;
  const m = { l: 48, r: 170, t: 28, b: 42 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const key = `r${k}`;
  const clean = r.clean[dir].recall[key]?.mean ?? 0;
  const series = new Map<string, { eps: number; y: number }[]>();
  const flat: { name: string; y: number }[] = [];
  for (const a of r.attacks) {
    const y = a[dir]?.recall[key]?.mean;
    if (y === undefined) continue;
    if (a.spec.eps === undefined) {
      flat.push({ name: a.label, y });
      continue;
    }
    const s = series.get(a.name) ?? [{ eps: 0, y: clean }];
    s.push({ eps: a.spec.eps, y });
    series.set(a.name, s);
  }
  const maxEps = Math.max(1, ...[...series.values()].flatMap((s) => s.map((p) => p.eps)));
  const x = (e: number) => m.l + (e / maxEps) * pw;
  const y = (v: number) => m.t + (1 - v / 100) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${dir.toUpperCase()} R@${k} vs eps" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${m.l}" y="16" font-size="13" font-weight="bold">${dir === 'tr' ? 'image→text' : 'text→image'} R@${k} vs eps (gallery ${r.gallery}, seed ${r.seed})</text>`);
  for (let v = 0; v <= 100; v += 20) {
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  const ticks = [...new Set([0, ...[...series.values()].flatMap((s) => s.map((p) => p.eps))])].sort((a, b) => a - b);
  for (const e of ticks) {
    parts.push(`<line x1="${x(e)}" x2="${x(e)}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x(e)}" y="${m.t + ph + 16}" text-anchor="middle">${e}</text>`);
  }
  parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 6}" text-anchor="middle">eps (/255, L-inf)</text>`);
  parts.push(`<text transform="translate(12 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">R@${k} (%)</text>`);
  let i = 0;
  const legend: string[] = [];
  for (const [name, pts] of series) {
    const c = PALETTE[i++ % PALETTE.length];
    const sorted = pts.slice().sort((a, b) => a.eps - b.eps);
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="1.8" points="${sorted.map((p) => `${x(p.eps).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ')}"/>`);
    for (const p of sorted) parts.push(`<circle cx="${x(p.eps).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="3" fill="${c}"><title>${esc(name)} eps ${p.eps}: ${p.y.toFixed(2)}</title></circle>`);
    legend.push(`<g><line x1="0" x2="18" y1="0" y2="0" stroke="${c}" stroke-width="2"/><text x="24" y="4">${esc(name)}</text></g>`);
  }
  for (const f of flat) {
    const c = PALETTE[i++ % PALETTE.length];
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y(f.y).toFixed(1)}" y2="${y(f.y).toFixed(1)}" stroke="${c}" stroke-dasharray="5 4" stroke-width="1.5"><title>${esc(f.name)}: ${f.y.toFixed(2)}</title></line>`);
    legend.push(`<g><line x1="0" x2="18" y1="0" y2="0" stroke="${c}" stroke-width="2" stroke-dasharray="5 4"/><text x="24" y="4">${esc(f.name)} (no eps)</text></g>`);
  }
  legend.push(`<g><text x="0" y="4" fill="#555">clean = ${clean.toFixed(1)} at eps 0</text></g>`);
  legend.forEach((g, j) => parts.push(`<g transform="translate(${m.l + pw + 14} ${m.t + 8 + j * 18})">${g}</g>`));
  parts.push('</svg>');
  return parts.join('\n');
}
