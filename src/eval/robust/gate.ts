/**
 * Release bars on a robust-recall report: `--fail-below robust.tr.r1=30,robust.ir.r1=30` names figures by their
 * path in the report and the least value each may take. The mean is compared (the interval is printed beside it).
 */
import type { RobustProbeReport } from './runner.js';

export interface Bar {
  path: string;
  min: number;
}

export function parseFailBelow(s: string): Bar[] {
  return s.split(',').map((part) => {
    const m = /^\s*((?:clean|robust)\.(?:tr|ir)\.r\d+)\s*=\s*(-?\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m) throw new Error(`--fail-below: '${part}' is not FIGURE=NUMBER with FIGURE one of clean|robust . tr|ir . rK (e.g. robust.tr.r1=30)`);
    return { path: m[1], min: Number(m[2]) };
  });
}

/** the bars a report falls below (empty = passes); a figure the report lacks fails, saying why */
export function checkBars(report: RobustProbeReport, bars: readonly Bar[]): string[] {
  const failed: string[] = [];
  for (const b of bars) {
    const [side, dir, k] = b.path.split('.') as ['clean' | 'robust', 'tr' | 'ir', string];
    const d = report[side][dir];
    const c = d?.recall[k];
    if (!d) failed.push(`${b.path}: no attack in the suite covers ${dir === 'tr' ? 'image queries' : 'caption queries'}`);
    else if (d.n === 0) failed.push(`${b.path}: no query answered`);
    else if (!c) failed.push(`${b.path}: not measured (cut-offs: ${report.ks.map((x) => `r${x}`).join(', ')})`);
    else if (c.mean < b.min) failed.push(`${b.path} = ${c.mean.toFixed(1)} [${c.lo.toFixed(1)}, ${c.hi.toFixed(1)}] < ${b.min}`);
  }
  if (report.partial) failed.push(`the probe is partial (${report.error}): bars are not trusted on a partial report`);
  return failed;
}
