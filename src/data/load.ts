/**
 * loadDataset: read + validate a dataset file, then decode its images (through the tensor cache) into one
 * DatasetSplit. See readers.ts for the file formats and imageCache.ts for decoding and caching rules.
 */
import { readFile, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DatasetError, type BadRow } from './errors.js';
import {
  decodeImage,
  decodeSpecForModel,
  ImageTensorCache,
  sha256,
  specKey,
  StatIndex,
  type DecodeModelConfig,
  type DecodeSpec,
  type ResizeMode,
  type Rgb,
} from './imageCache.js';
import { mapPool, Semaphore } from './pool.js';
import { readDatasetFile, type DatasetFormat, type DatasetRecord, type OnBadRow } from './readers.js';
import type { DatasetSplit, SceneGraph } from './types.js';

export interface LoadProgress {
  phase: 'images';
  done: number;
  total: number;
  cacheHits: number;
  decoded: number;
  skipped: number;
}

export interface LoadOptions {
  /** image edge in pixels (integer 1..4096); may be omitted when `model` is given (it is the model's) */
  size?: number;
  /**
   * the model the pixels are for (its ModelConfig): decides the decode rule (decodeSpecForModel), so a CLIP model's
   * images are decoded as CLIPImageProcessor does. Without it, Manyfold's rule at `size`.
   */
  model?: DecodeModelConfig;
  /** rows of these splits only (Karpathy: train | val | test | restval); omit to load every row */
  split?: string | string[];
  /** directory image paths are relative to (default: the dataset file's directory) */
  imagesDir?: string;
  /** 'fail' (default): throw DatasetError at the first bad row; 'skip': drop bad rows, list them in `skipped` */
  onBadRow?: OnBadRow;
  /** tensor cache directory; default <dataset dir>/.cache/manyfold/images; false disables the cache */
  cacheDir?: string | false;
  /** keep at most this many rows of the selected split(s), in file order (bad rows still count as skipped) */
  limit?: number;
  /** Manyfold models: 'cover' (default, centre crop) or 'fill' (stretch); see imageCache.ts. Not for CLIP models */
  resize?: ResizeMode;
  /** colour transparent pixels are flattened onto: "#rrggbb", "r,g,b" or a triple; default white */
  background?: string | Rgb;
  /** images decoded at once (default min(4, available cores)); file and cache reads use up to 4x this */
  concurrency?: number;
  /** force a format instead of detecting it */
  format?: DatasetFormat;
  /** hash every source file even when the stat index knows it */
  verifyHashes?: boolean;
  onProgress?: (p: LoadProgress) => void;
  /** called once per actual sharp decode (instrumentation: a warm cache makes zero calls) */
  onDecode?: (imagePath: string) => void;
  /** non-fatal problems (cache not writable, corrupt cache entry replaced) */
  onWarning?: (message: string) => void;
}

/** Default cache location for a dataset file. */
export function defaultCacheDir(datasetFile: string): string {
  return join(dirname(resolve(datasetFile)), '.cache', 'manyfold', 'images');
}

type RowResult = { ok: true } | { ok: false; reason: string };

function splitLabel(split: string | string[] | undefined): string {
  if (split === undefined) return 'all';
  return Array.isArray(split) ? split.join('+') : split;
}

/** Reads a Karpathy JSON or JSONL manifest and decodes its images to size x size RGB. */
export async function loadDataset(file: string, opts: LoadOptions): Promise<DatasetSplit> {
  const t0 = performance.now();
  const size = opts.size ?? opts.model?.image.size;
  if (size === undefined) throw new Error('loadDataset: give size or model');
  if (!Number.isInteger(size) || size < 1 || size > 4096) throw new Error(`loadDataset: size must be an integer 1..4096, got ${size}`);
  if (opts.model && opts.model.image.size !== size) {
    throw new Error(`loadDataset: size ${size} differs from the model's input size ${opts.model.image.size}`);
  }
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0)) {
    throw new Error(`loadDataset: limit must be a non-negative integer, got ${opts.limit}`);
  }
  const onBadRow = opts.onBadRow ?? 'fail';
  let spec: DecodeSpec;
  try {
    spec = decodeSpecForModel(opts.model ?? { image: { size } }, { resize: opts.resize, background: opts.background });
  } catch (e) {
    throw new Error(`loadDataset: ${(e as Error).message}`);
  }

  const read = await readDatasetFile(file, { split: opts.split, imagesDir: opts.imagesDir, onBadRow, format: opts.format });
  const records: DatasetRecord[] = opts.limit === undefined ? read.records : read.records.slice(0, opts.limit);
  const warn = opts.onWarning ?? (() => undefined);

  const cacheDir = opts.cacheDir === false ? null : resolve(opts.cacheDir ?? defaultCacheDir(read.file));
  let cache = cacheDir ? new ImageTensorCache(cacheDir) : null;
  const index = cacheDir ? new StatIndex(join(cacheDir, 'stat-index-v1.json')) : null;
  await index?.load();

  const decodeConcurrency = Math.max(1, Math.floor(opts.concurrency ?? Math.min(4, availableParallelism())));
  const decodeSlots = new Semaphore(decodeConcurrency);
  const px = size * size * 3;
  const images = new Uint8Array(records.length * px);
  const stats = { cacheHits: 0, decoded: 0, corrupt: 0, hashed: 0 };
  let done = 0;
  let skippedImages = 0;

  const processRow = async (rec: DatasetRecord, i: number): Promise<RowResult> => {
    let path: string | undefined;
    let st: Stats | undefined;
    for (const candidate of rec.imagePaths) {
      try {
        const s = await stat(candidate);
        if (s.isFile()) {
          path = candidate;
          st = s;
          break;
        }
      } catch {
        // try the next candidate
      }
    }
    if (!path || !st) return { ok: false, reason: `image not found: ${rec.imagePaths.join(' (or ') + ')'.repeat(rec.imagePaths.length - 1)}` };

    let bytes: Buffer | undefined;
    let sha = index && !opts.verifyHashes ? index.lookup(path, st) : undefined;
    const readBytes = async (): Promise<Buffer> => {
      const b = await readFile(path);
      sha = sha256(b);
      stats.hashed++;
      index?.set(path, st, sha);
      return b;
    };
    try {
      if (!sha) bytes = await readBytes();
    } catch (err) {
      return { ok: false, reason: `cannot read image ${path}: ${(err as Error).message}` };
    }

    if (cache && sha) {
      const hit = await cache.get(sha, spec);
      if (hit.status === 'hit') {
        images.set(hit.pixels, i * px);
        stats.cacheHits++;
        return { ok: true };
      }
      if (hit.status === 'corrupt') {
        stats.corrupt++;
        warn(`corrupt cache entry for ${path} (${hit.reason}); decoding again`);
      }
    }

    let pixels: Uint8Array;
    try {
      if (!bytes) bytes = await readBytes();
      const input = bytes;
      pixels = await decodeSlots.run(() => decodeImage(input, spec));
    } catch (err) {
      return { ok: false, reason: `cannot decode image ${path}: ${(err as Error).message}` };
    }
    stats.decoded++;
    opts.onDecode?.(path);
    images.set(pixels, i * px);
    // rows run concurrently: another row may disable the cache while this one awaits, so keep a local handle
    const writer = cache;
    if (writer && sha) {
      try {
        await writer.put(sha, spec, pixels);
      } catch (err) {
        if (cache) warn(`tensor cache disabled: cannot write ${writer.dir}: ${(err as Error).message}`);
        cache = null;
      }
    }
    return { ok: true };
  };

  const results = await mapPool(records, decodeConcurrency * 4, async (rec, i) => {
    const r = await processRow(rec, i);
    if (!r.ok) {
      if (onBadRow === 'fail') throw new DatasetError(rec.where, r.reason);
      skippedImages++;
    }
    done++;
    opts.onProgress?.({ phase: 'images', done, total: records.length, cacheHits: stats.cacheHits, decoded: stats.decoded, skipped: skippedImages });
    return r;
  });

  try {
    await index?.save();
  } catch (err) {
    warn(`cannot save the stat index ${index?.file}: ${(err as Error).message}`);
  }

  // compact: drop bad rows, keep file order
  const skipped: BadRow[] = [...read.skipped];
  const imageIds: string[] = [];
  const captions: string[] = [];
  const captionToImage: number[] = [];
  const imageToCaptions: number[][] = [];
  const scenes: (SceneGraph | undefined)[] = [];
  let anyScene = false;
  let count = 0;
  for (let i = 0; i < records.length; i++) {
    const rec = records[i];
    const r = results[i];
    if (!r.ok) {
      skipped.push({ where: rec.where, reason: r.reason });
      continue;
    }
    if (count !== i) images.copyWithin(count * px, i * px, (i + 1) * px);
    imageIds.push(rec.imageId);
    const caps: number[] = [];
    for (const c of rec.captions) {
      caps.push(captions.length);
      captions.push(c);
      captionToImage.push(count);
    }
    imageToCaptions.push(caps);
    scenes.push(rec.scene);
    if (rec.scene) anyScene = true;
    count++;
  }

  const split: DatasetSplit = {
    name: splitLabel(opts.split),
    size,
    count,
    images: count === records.length ? images : images.slice(0, count * px),
    imageIds,
    captions,
    captionToImage: Int32Array.from(captionToImage),
    imageToCaptions,
    skipped,
    load: {
      file: read.file,
      format: read.format,
      resize: spec.resize,
      decode: specKey(spec),
      cacheDir,
      cacheHits: stats.cacheHits,
      decoded: stats.decoded,
      corruptEntries: stats.corrupt,
      hashed: stats.hashed,
      ms: performance.now() - t0,
    },
  };
  if (anyScene) split.scenes = scenes;
  return split;
}
