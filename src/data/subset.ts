/**
 * A smaller copy of a data set's manifest: the first N rows of chosen splits, in file order, the other splits
 * whole. Images are not copied; their paths are rewritten so they resolve from the new file's directory. Used
 * for data-scarce experiments (few training images, many epochs) against the full test split.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { DatasetError } from './errors.js';
import { detectFormat, readDatasetFile, toPosix } from './readers.js';

export interface SubsetOptions {
  /** rows to keep per split (the first N in file order); splits not named are kept whole, 0 drops a split */
  keep: Record<string, number>;
  /** directory the source's image paths are relative to (default: the source file's directory) */
  imagesDir?: string;
}

export interface SubsetResult {
  file: string;
  format: 'karpathy' | 'jsonl';
  /** rows per split in the new file */
  counts: Record<string, number>;
  /** rows per split in the source */
  sourceCounts: Record<string, number>;
}

/** The image path as the new file must spell it: unchanged when both files share a base directory. */
function rebase(pathInSource: string, sourceBase: string, outBase: string): string {
  if (isAbsolute(pathInSource) || sourceBase === outBase) return pathInSource;
  return toPosix(relative(outBase, join(sourceBase, pathInSource)));
}

export async function subsetDataset(source: string, out: string, opts: SubsetOptions): Promise<SubsetResult> {
  const src = resolve(source);
  const dst = resolve(out);
  if (src === dst) throw new DatasetError(dst, 'the subset would overwrite its source; choose another --out');
  for (const [split, n] of Object.entries(opts.keep)) {
    if (!Number.isInteger(n) || n < 0) throw new DatasetError(src, `rows to keep of split "${split}" must be an integer >= 0, got ${n}`);
  }
  // validate every row first (names the bad file/row), so the subset is only ever written from a clean source
  const read = await readDatasetFile(src, { imagesDir: opts.imagesDir });
  const sourceCounts: Record<string, number> = {};
  for (const r of read.records) {
    const s = r.split ?? '(none)';
    sourceCounts[s] = (sourceCounts[s] ?? 0) + 1;
  }
  for (const [split, n] of Object.entries(opts.keep)) {
    const have = sourceCounts[split] ?? 0;
    if (n > have) throw new DatasetError(src, `asked for ${n} rows of split "${split}" but the file has ${have}`);
  }
  const counts: Record<string, number> = {};
  const take = (split: string | undefined): boolean => {
    const s = split ?? '(none)';
    const limit = opts.keep[s];
    if (limit !== undefined && (counts[s] ?? 0) >= limit) return false;
    counts[s] = (counts[s] ?? 0) + 1;
    return true;
  };
  const sourceBase = opts.imagesDir ? resolve(opts.imagesDir) : dirname(src);
  const outBase = dirname(dst);
  let text = await readFile(src, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const format = detectFormat(src, text);
  if (detectFormat(dst, '') !== format && /\.(json|jsonl|ndjson)$/i.test(dst)) {
    throw new DatasetError(dst, `the source is ${format === 'karpathy' ? 'a Karpathy JSON' : 'JSONL'}; give --out the same extension`);
  }
  let body: string;
  if (format === 'karpathy') {
    const doc = JSON.parse(text) as { images: Record<string, unknown>[] } & Record<string, unknown>;
    const images: Record<string, unknown>[] = [];
    for (const entry of doc.images) {
      if (!take(entry.split as string)) continue;
      const filename = entry.filename as string;
      const filepath = entry.filepath as string | undefined;
      // the reader also tries `filename` directly under the base when `filepath` is given: keep the one that exists
      const dir = filepath && !existsSync(join(sourceBase, filepath, filename)) && existsSync(join(sourceBase, filename)) ? '' : (filepath ?? '');
      const newDir = rebase(dir || '.', sourceBase, outBase);
      images.push({ ...entry, filepath: newDir === '.' ? undefined : newDir });
    }
    body = `${JSON.stringify({ ...doc, images, subsetOf: { file: src, keep: opts.keep } })}\n`;
  } else {
    const lines: string[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const row = JSON.parse(line) as { image: string; split?: string } & Record<string, unknown>;
      if (!take(row.split)) continue;
      lines.push(JSON.stringify({ ...row, image: rebase(row.image, sourceBase, outBase) }));
    }
    body = `${lines.join('\n')}\n`;
  }
  try {
    await writeFile(dst, body);
  } catch (err) {
    throw new DatasetError(dst, `cannot write the subset: ${(err as Error).message}`, { cause: err });
  }
  return { file: dst, format, counts, sourceCounts };
}
