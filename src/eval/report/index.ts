/** Robust-eval reports: JSON, Markdown and a self-contained HTML page (inline SVG curves, PNG examples). */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AdversarialExample, RobustReport } from '../robust.js';
import { renderHtml } from './html.js';
import { renderMarkdown } from './markdown.js';

export { renderMarkdown } from './markdown.js';
export { renderHtml } from './html.js';
export { robustnessCurveSvg } from './svg.js';
export { pngDataUrl, magnifiedDifference } from './png.js';

export function renderJson(report: RobustReport | Record<string, unknown>): string {
  return JSON.stringify(report, null, 2) + '\n';
}

/** Write any of the three report formats; returns the files written. */
export async function writeReports(
  report: RobustReport,
  examples: readonly AdversarialExample[],
  files: { json?: string; md?: string; html?: string },
  opts: { command?: string; extraJson?: Record<string, unknown> } = {},
): Promise<string[]> {
  const out: string[] = [];
  const put = async (f: string, text: string) => {
    await mkdir(dirname(f), { recursive: true });
    await writeFile(f, text);
    out.push(f);
  };
  if (files.json) await put(files.json, renderJson({ ...report, ...(opts.extraJson ?? {}) }));
  if (files.md) await put(files.md, renderMarkdown(report, { command: opts.command }));
  if (files.html) await put(files.html, await renderHtml(report, examples, { command: opts.command }));
  return out;
}
