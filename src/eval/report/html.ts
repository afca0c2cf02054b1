/**
 * A self-contained HTML page for a robust report: no scripts, no external resources (inline CSS, inline SVG
 * robustness curves, adversarial examples as PNG data URLs).
 */
import type { AdversarialExample, RobustReport } from '../robust.js';
import { ATTACK_HEADERS, CLEAN_HEADERS, WORST_HEADERS, attackRow, cleanRows, protocolLine, worstRow } from './format.js';
import { magnifiedDifference, pngDataUrl } from './png.js';
import { robustnessCurveSvg } from './svg.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function table(headers: string[], rows: string[][]): string {
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const CSS = `body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.proto{background:#f7f7fb;border-left:4px solid #88a;padding:8px 12px;font-size:13px}
.warn{background:#fff4e5;border-left:4px solid #e69500;padding:8px 12px}
.ok{color:#2a7}.w{color:#c60;font-weight:bold}.sk{color:#888}
.curves{display:flex;flex-wrap:wrap;gap:16px}
.ex{display:flex;gap:18px;align-items:flex-start;border-top:1px solid #eee;padding:10px 0}
.ex figure{margin:0;text-align:center;font-size:11px}.ex img{image-rendering:pixelated;border:1px solid #ccc}
.cap{font-size:13px;max-width:480px}.cap del{color:#a33}.cap ins{color:#273;text-decoration:none;font-weight:bold}`;

function captionDiff(a: string, b: string): string {
  const wa = a.split(/\s+/);
  const wb = b.split(/\s+/);
  if (wa.length !== wb.length) return `<del>${esc(a)}</del><br><ins>${esc(b)}</ins>`;
  return wb.map((w, i) => (w === wa[i] ? esc(w) : `<del>${esc(wa[i])}</del> <ins>${esc(w)}</ins>`)).join(' ');
}

export async function renderHtml(r: RobustReport, examples: readonly AdversarialExample[] = [], opts: { title?: string; command?: string } = {}): Promise<string> {
  const title = opts.title ?? `Robust retrieval: ${r.model}`;
  const warns = r.sanity.checks.filter((c) => c.status === 'warn');
  const parts: string[] = [];
  parts.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head><body>`);
  parts.push(`<h1>${esc(title)}</h1>`);
  if (opts.command) parts.push(`<pre>${esc(opts.command)}</pre>`);
  parts.push(`<div class="proto"><b>Protocol:</b> ${esc(protocolLine(r))}.<br>${esc(r.robust.protocol)}</div>`);
  if (warns.length) parts.push(`<div class="warn"><b>Sanity warnings (${warns.length})</b><ul>${warns.map((w) => `<li><b>${esc(w.id)}</b>: ${esc(w.message)}</li>`).join('')}</ul></div>`);
  parts.push('<h2>Clean</h2>', table(CLEAN_HEADERS, cleanRows(r)));
  parts.push('<h2>Robustness curves</h2><div class="curves">', robustnessCurveSvg(r, 'tr', 1), robustnessCurveSvg(r, 'ir', 1), '</div>');
  parts.push(
    `<h2>Under attack</h2><p>Recall in percent (side=${esc(r.robust.side)}; "(clean)" = that direction is not perturbed by the attack). ASR in percent of the N queries correct at R@1 clean ("of N").</p>`,
    table(ATTACK_HEADERS, Object.values(r.attacks).map(attackRow)),
  );
  if (Object.keys(r.worst).length) parts.push('<h2>Worst case per query</h2>', table(WORST_HEADERS, Object.values(r.worst).map(worstRow)));
  if (examples.length) {
    parts.push(`<h2>Adversarial examples</h2><p>Images upscaled 4x (nearest). Difference = 0.5 + (adversarial − clean) × gain, gain so that the largest change is black/white.</p>`);
    for (const ex of examples) {
      const figs: string[] = [`<figure><img src="${await pngDataUrl(ex.clean, ex.size)}" alt="clean"><figcaption>clean ${esc(ex.imageId)}<br>TR rank ${ex.cleanRank}</figcaption></figure>`];
      if (ex.adv) {
        const diff = magnifiedDifference(ex.clean, ex.adv);
        figs.push(`<figure><img src="${await pngDataUrl(ex.adv, ex.size)}" alt="adversarial"><figcaption>${esc(ex.label)}<br>TR rank ${ex.advRank}, L∞ ${ex.linf255.toFixed(2)}/255</figcaption></figure>`);
        figs.push(`<figure><img src="${await pngDataUrl(diff.image, ex.size)}" alt="difference"><figcaption>difference ×${diff.gain.toFixed(0)}</figcaption></figure>`);
      }
      const cap =
        ex.captionOriginal !== null
          ? `<p><b>caption</b>${ex.captionLabel ? ` (${esc(ex.captionLabel)})` : ''}: ${ex.captionAdversarial !== null && ex.captionAdversarial !== ex.captionOriginal ? captionDiff(ex.captionOriginal, ex.captionAdversarial) : `${esc(ex.captionOriginal)} <i>(unchanged)</i>`}</p>`
          : '';
      parts.push(`<div class="ex">${figs.join('')}<div class="cap">${cap}<p><b>top-1 caption, clean:</b> ${esc(ex.top1Clean)}<br><b>top-1 caption, adversarial:</b> ${esc(ex.top1Adv)}</p></div></div>`);
    }
  }
  parts.push(
    '<h2>Sanity checks</h2><ul>',
    ...r.sanity.checks.map((c) => `<li><span class="${c.status === 'warn' ? 'w' : c.status === 'ok' ? 'ok' : 'sk'}">${c.status.toUpperCase()}</span> <code>${esc(c.id)}</code>: ${esc(c.message)}</li>`),
    '</ul>',
  );
  parts.push(`<p>Total ${r.seconds.toFixed(1)} s.</p></body></html>`);
  return parts.join('\n');
}
