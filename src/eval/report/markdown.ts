/** Markdown rendering of a robust report: protocol line, clean, per-attack and worst-case tables, sanity. */
import type { RobustReport } from '../robust.js';
import { ATTACK_HEADERS, CLEAN_HEADERS, WORST_HEADERS, attackRow, cleanRows, protocolLine, worstRow } from './format.js';

function table(headers: string[], rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [`| ${headers.map(esc).join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export function renderMarkdown(r: RobustReport, opts: { title?: string; command?: string } = {}): string {
  const out: string[] = [];
  out.push(`# ${opts.title ?? `Robust retrieval: ${r.model}`}`, '');
  if (opts.command) out.push('```', opts.command, '```', '');
  out.push(`**Protocol:** ${protocolLine(r)}.`, '', r.robust.protocol, '');
  const warns = r.sanity.checks.filter((c) => c.status === 'warn');
  if (warns.length) {
    out.push(`> **Sanity warnings (${warns.length})**`);
    for (const w of warns) out.push(`> - **${w.id}**: ${w.message}`);
    out.push('');
  }
  out.push('## Clean', '', table(CLEAN_HEADERS, cleanRows(r)), '');
  out.push(
    '## Under attack',
    '',
    `Recall in percent (side=${r.robust.side}; "(clean)" = that direction is not perturbed by the attack). ASR in percent of the N queries correct at R@1 clean ("of N").`,
    '',
    table(ATTACK_HEADERS, Object.values(r.attacks).map(attackRow)),
    '',
  );
  if (Object.keys(r.worst).length) out.push('## Worst case per query', '', table(WORST_HEADERS, Object.values(r.worst).map(worstRow)), '');
  out.push('## Sanity checks', '');
  for (const c of r.sanity.checks) out.push(`- ${c.status === 'warn' ? '**WARN**' : c.status} \`${c.id}\`: ${c.message}`);
  out.push('', `Total ${r.seconds.toFixed(1)} s.`, '');
  return out.join('\n');
}
