/**
 * Dataset readers: parse and validate a Karpathy-split JSON or a JSONL manifest into records
 * (image location + captions + optional scene graph). No image is touched here; see load.ts.
 */
import { readFile } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import type { z } from 'zod';
import { DatasetError, type BadRow } from './errors.js';
import { describeZodError, JsonlRowSchema, KarpathyFileSchema, KarpathyImageSchema } from './schemas.js';
import type { SceneGraph } from './types.js';

export type DatasetFormat = 'karpathy' | 'jsonl';
export type OnBadRow = 'fail' | 'skip';

/** One validated row: an image and its captions. */
export interface DatasetRecord {
  /** unique id within the data set: `filepath/filename` (Karpathy) or the manifest's image path (JSONL) */
  imageId: string;
  /** absolute candidate paths of the image file, tried in order */
  imagePaths: string[];
  captions: string[];
  split?: string;
  scene?: SceneGraph;
  /** the item's id in a system under test, when the file gives one (`targetId`; remote probes) */
  targetId?: string;
  /** where the row lives, for messages: `file:line` or `file images[i] ("name")` */
  where: string;
}

export interface ReadOptions {
  /** keep only rows of these splits (Karpathy: train | val | test | restval); undefined keeps all rows */
  split?: string | string[];
  /** Karpathy: directory the image paths are relative to (default: the JSON file's directory) */
  imagesDir?: string;
  onBadRow?: OnBadRow;
}

export interface ReadResult {
  file: string;
  format: DatasetFormat;
  records: DatasetRecord[];
  skipped: BadRow[];
}

/** Collapses whitespace; an empty result means the caption is empty. */
export function normaliseCaption(raw: string): string {
  return raw.replace(/\s+/g, ' ').trim();
}

/**
 * Format by extension (.jsonl/.ndjson -> jsonl, .json -> karpathy), otherwise by content: a whole-file JSON
 * object with an `images` array is Karpathy, anything else is treated as JSONL.
 */
export function detectFormat(file: string, text: string): DatasetFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'karpathy';
  const head = text.trimStart();
  if (head.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object' && Array.isArray((parsed as { images?: unknown }).images)) return 'karpathy';
    } catch {
      // not one JSON document: JSONL (or broken JSON, which the JSONL reader reports line by line)
    }
  }
  return 'jsonl';
}

function splitFilter(split: string | string[] | undefined): ((s: string | undefined) => boolean) | null {
  if (split === undefined) return null;
  const wanted = new Set(Array.isArray(split) ? split : [split]);
  return (s) => s !== undefined && wanted.has(s);
}

/** "Unexpected token ... at position 123" -> "line 4, column 7" when the engine reports a position. */
function jsonErrorLocation(text: string, err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /position (\d+)/.exec(msg);
  let where = '';
  if (m) {
    const pos = Number(m[1]);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const col = pos - before.lastIndexOf('\n');
    where = ` at line ${line}, column ${col}`;
  }
  return `malformed JSON${where}: ${msg}`;
}

class RowSink {
  readonly skipped: BadRow[] = [];
  constructor(private readonly mode: OnBadRow) {}
  bad(where: string, reason: string): void {
    if (this.mode === 'fail') throw new DatasetError(where, reason);
    this.skipped.push({ where, reason });
  }
}

function cleanCaptions(raw: string[], label: (i: number) => string): { captions: string[] } | { error: string } {
  if (raw.length === 0) return { error: 'has no captions' };
  const captions: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = normaliseCaption(raw[i]);
    if (!c) return { error: `${label(i)} is empty` };
    captions.push(c);
  }
  return { captions };
}

export function toPosix(p: string): string {
  return p.replace(/\\/g, '/');
}

/** Reads a Karpathy-split JSON: {"images":[{"filename","filepath"?,"split","sentences":[{"raw"}],"scene"?}]} */
export function parseKarpathy(file: string, text: string, opts: ReadOptions = {}): ReadResult {
  const abs = resolve(file);
  const sink = new RowSink(opts.onBadRow ?? 'fail');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    // the whole file is one document: it cannot be skipped row by row
    throw new DatasetError(abs, jsonErrorLocation(text, err), { cause: err });
  }
  const top = KarpathyFileSchema.safeParse(doc);
  if (!top.success) {
    throw new DatasetError(abs, `not a Karpathy-split JSON (expected {"images": [...]}): ${describeZodError(top.error)}`);
  }
  const base = opts.imagesDir ? resolve(opts.imagesDir) : dirname(abs);
  const keep = splitFilter(opts.split);
  const records: DatasetRecord[] = [];
  const seen = new Map<string, string>();
  top.data.images.forEach((entry, i) => {
    const name =
      entry && typeof entry === 'object' && typeof (entry as { filename?: unknown }).filename === 'string'
        ? ` ("${(entry as { filename: string }).filename}")`
        : '';
    const where = `${abs} images[${i}]${name}`;
    // rows of other splits are not validated: loading "test" must not fail on a broken "train" row
    const rawSplit = entry && typeof entry === 'object' ? (entry as { split?: unknown }).split : undefined;
    if (keep && typeof rawSplit === 'string' && !keep(rawSplit)) return;
    const parsed = KarpathyImageSchema.safeParse(entry);
    if (!parsed.success) return sink.bad(where, describeZodError(parsed.error as z.ZodError));
    const row = parsed.data;
    if (keep && !keep(row.split)) return;
    const caps = cleanCaptions(
      row.sentences.map((s) => s.raw),
      (k) => `sentences[${k}].raw`,
    );
    if ('error' in caps) return sink.bad(where, caps.error);
    const imageId = toPosix(row.filepath ? join(row.filepath, row.filename) : row.filename);
    const first = seen.get(imageId);
    if (first !== undefined) return sink.bad(where, `duplicate image "${imageId}" (first listed at ${first})`);
    seen.set(imageId, `images[${i}]`);
    const candidates = [row.filepath ? join(base, row.filepath, row.filename) : join(base, row.filename)];
    if (row.filepath) candidates.push(join(base, row.filename));
    records.push({ imageId, imagePaths: candidates, captions: caps.captions, split: row.split, scene: row.scene, where, ...(row.targetId !== undefined ? { targetId: row.targetId } : {}) });
  });
  return { file: abs, format: 'karpathy', records, skipped: sink.skipped };
}

/** Reads a JSONL manifest: one {"image","captions":[...],"split"?,"scene"?} per line, images relative to the manifest. */
export function parseJsonl(file: string, text: string, opts: ReadOptions = {}): ReadResult {
  const abs = resolve(file);
  const sink = new RowSink(opts.onBadRow ?? 'fail');
  const base = opts.imagesDir ? resolve(opts.imagesDir) : dirname(abs);
  const keep = splitFilter(opts.split);
  const records: DatasetRecord[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (!line.trim()) continue;
    const where = `${abs}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      sink.bad(where, `malformed JSON line: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const rawSplit = value && typeof value === 'object' ? (value as { split?: unknown }).split : undefined;
    if (keep && typeof rawSplit === 'string' && !keep(rawSplit)) continue;
    const parsed = JsonlRowSchema.safeParse(value);
    if (!parsed.success) {
      sink.bad(where, describeZodError(parsed.error as z.ZodError));
      continue;
    }
    const row = parsed.data;
    if (keep) {
      if (row.split === undefined) {
        sink.bad(where, `has no "split" but split ${JSON.stringify(opts.split)} was requested (omit the split option to load every row)`);
        continue;
      }
      if (!keep(row.split)) continue;
    }
    const caps = cleanCaptions(row.captions, (k) => `captions[${k}]`);
    if ('error' in caps) {
      sink.bad(where, caps.error);
      continue;
    }
    const imageId = toPosix(row.image);
    const first = seen.get(imageId);
    if (first !== undefined) {
      sink.bad(where, `duplicate image "${imageId}" (first listed at line ${first}); put all its captions on one line`);
      continue;
    }
    seen.set(imageId, i + 1);
    const path = isAbsolute(row.image) ? row.image : join(base, row.image);
    records.push({ imageId, imagePaths: [path], captions: caps.captions, split: row.split, scene: row.scene, where, ...(row.targetId !== undefined ? { targetId: row.targetId } : {}) });
  }
  return { file: abs, format: 'jsonl', records, skipped: sink.skipped };
}

/** Reads and validates a dataset file, auto-detecting its format (see detectFormat). */
export async function readDatasetFile(file: string, opts: ReadOptions & { format?: DatasetFormat } = {}): Promise<ReadResult> {
  const abs = resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DatasetError(abs, code === 'ENOENT' ? 'dataset file not found' : `cannot read dataset file: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const format = opts.format ?? detectFormat(abs, text);
  return format === 'karpathy' ? parseKarpathy(abs, text, opts) : parseJsonl(abs, text, opts);
}
