/**
 * Image decoding (sharp) and the on-disk tensor cache.
 *
 * Decoding always yields RGB uint8, row-major [size, size, 3]; which rule depends on the model, so callers get
 * their spec from `decodeSpecForModel(config)` and never build one by hand for a model.
 * Manyfold's own models: auto-orient (EXIF), resize to size x size (lanczos3), flatten any alpha onto a
 * background colour, convert to 8-bit sRGB, drop alpha.
 * - resize 'cover' (default): scale the shorter side to `size` and centre-crop the longer one in one sharp
 *   resize; keeps aspect ratio, may cut the image's edges on non-square inputs.
 * - resize 'fill': stretch to size x size; keeps everything in view (useful when captions talk about the
 *   image's left/right edges), distorts aspect ratio.
 * Imported CLIP models (resize 'clip'): what Hugging Face's CLIPImageProcessor does after `load_image`, because
 * the checkpoint's weights were trained on exactly that input: EXIF orientation applied, alpha dropped without
 * compositing and embedded ICC profiles ignored (both as PIL's convert('RGB') does), the shortest edge resized
 * to `shortestEdge` with the other edge int(shortestEdge * long / short) (bicubic), then a size x size crop at
 * ((h - size) // 2, (w - size) // 2). The resize and the crop are two explicit steps on the fully decoded image
 * so the crop offsets are HF's to the pixel; the only remaining difference is sharp's bicubic vs PIL's (a large
 * reduction is done in bicubic steps of less than 4x each, see decodeClip; measured by
 * scripts/preprocess-parity.ts against test/reference/clip_preprocess_ref.py).
 *
 * Cache: one file per (source content, decode spec):
 *   <cacheDir>/<sha[0:2]>/<sha256 of the source bytes>.<specKey>.rgb
 * where specKey is `<size>.<mode>.<bg hex>` for Manyfold's modes and `<size>.clip1-<shortestEdge>` for CLIP's.
 * holding a 20-byte header (magic "MFIC", version, channels, width, height, CRC-32 of the pixels) and the raw
 * pixels. Keyed by content, so the same image in two data sets (or renamed) is decoded once. One small file
 * per image loads 10k images at 32 px in well under a second and never needs a rewrite when a data set grows.
 * Entries are written to a temp file and renamed, so concurrent writers and killed processes never leave a
 * half-written entry under the final name; an entry that fails validation (truncated, bit rot) is re-decoded
 * and overwritten.
 *
 * Stat index: <cacheDir>/stat-index-v1.json maps absolute source path -> [bytes, mtimeMs, sha256] so a second
 * run need not read and hash every source image (like git's index). A file rewritten with the same size and
 * mtime would be missed; pass verifyHashes to always hash.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../util/atomic.js';
import { crc32 } from './crc32.js';

/** Manyfold's own resize modes (see the module comment); CLIP models are decoded by the 'clip' spec instead */
export type ResizeMode = 'cover' | 'fill';
export type Rgb = readonly [number, number, number];

export interface ManyfoldDecodeSpec {
  size: number;
  resize: ResizeMode;
  /** colour that transparent pixels are flattened onto */
  background: Rgb;
}

/** CLIPImageProcessor's decode: shortest edge to `shortestEdge` (bicubic), centre crop size x size */
export interface ClipDecodeSpec {
  size: number;
  resize: 'clip';
  /** CLIPImageProcessor's size.shortest_edge; >= size (the crop) */
  shortestEdge: number;
}

export type DecodeSpec = ManyfoldDecodeSpec | ClipDecodeSpec;

export const DEFAULT_BACKGROUND: Rgb = [255, 255, 255];

/**
 * Bumped when the CLIP decode changes in a way that changes pixels, so cached entries of the old rule are never
 * served for the new one (Manyfold's keys are unversioned for compatibility with existing caches).
 */
const CLIP_DECODE_VERSION = 1;

/** What decodeSpecForModel reads of a model config (a structural subset of ModelConfig). */
export interface DecodeModelConfig {
  family?: 'manyfold' | 'clip';
  image: { size: number };
  clip?: { resizeShortestEdge?: number };
}

/**
 * The one place that decides how a model's images are decoded: every loader (eval / training data, the API, the
 * `embed` command) asks this. A CLIP-family model always gets CLIPImageProcessor's rule; `resize` / `background`
 * only choose between Manyfold's own modes, so asking a CLIP model for 'fill' is an error rather than a silent
 * mismatch with the weights.
 */
export function decodeSpecForModel(config: DecodeModelConfig, opts: { resize?: ResizeMode; background?: string | Rgb } = {}): DecodeSpec {
  const size = config.image.size;
  if (!Number.isInteger(size) || size < 1 || size > 4096) throw new Error(`model image size must be an integer 1..4096, got ${size}`);
  if (config.family === 'clip') {
    if (opts.resize === 'fill') {
      throw new Error("resize 'fill' does not apply to a CLIP model: its images are decoded as CLIPImageProcessor does (shortest edge, centre crop)");
    }
    // checkpoints without the field were all published with shortest_edge == crop size (224 / 336)
    const shortestEdge = config.clip?.resizeShortestEdge ?? size;
    if (!Number.isInteger(shortestEdge) || shortestEdge < size || shortestEdge > 8192) {
      throw new Error(`clip.resizeShortestEdge must be an integer between the crop size ${size} and 8192, got ${shortestEdge}`);
    }
    return { size, resize: 'clip', shortestEdge };
  }
  const resize = opts.resize ?? 'cover';
  if (resize !== 'cover' && resize !== 'fill') throw new Error(`resize must be cover or fill, got ${String(resize)}`);
  return { size, resize, background: opts.background === undefined ? DEFAULT_BACKGROUND : parseRgb(opts.background) };
}

/**
 * CLIPImageProcessor's geometry for a width x height image (after EXIF orientation): the resized size, shortest
 * edge = shortestEdge and the long edge truncated as Python's int(shortestEdge * long / short) does (the float
 * division is the same IEEE double in both languages), then the crop's top-left corner.
 */
export function clipResizeGeometry(
  width: number,
  height: number,
  shortestEdge: number,
  size: number,
): { width: number; height: number; top: number; left: number } {
  if (!(width >= 1 && height >= 1)) throw new Error(`image has no pixels (${width}x${height})`);
  const [rw, rh] = width <= height ? [shortestEdge, Math.trunc((shortestEdge * height) / width)] : [Math.trunc((shortestEdge * width) / height), shortestEdge];
  return { width: rw, height: rh, top: Math.floor((rh - size) / 2), left: Math.floor((rw - size) / 2) };
}

const MAGIC = 0x4349464d; // "MFIC" little-endian
const VERSION = 1;
const HEADER = 20;

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** The part of a cache key that depends on the decode settings. */
export function specKey(spec: DecodeSpec): string {
  if (spec.resize === 'clip') return `${spec.size}.clip${CLIP_DECODE_VERSION}-${spec.shortestEdge}`;
  return `${spec.size}.${spec.resize}.${spec.background.map(hex2).join('')}`;
}

/** Parses "#rrggbb", "rrggbb" or "r,g,b" into an RGB triple. */
export function parseRgb(value: string | Rgb): Rgb {
  if (typeof value !== 'string') {
    if (value.length !== 3 || value.some((c) => !Number.isInteger(c) || c < 0 || c > 255)) {
      throw new Error(`invalid RGB colour ${JSON.stringify(value)}: expected three integers 0..255`);
    }
    return value;
  }
  const h = /^#?([0-9a-f]{6})$/i.exec(value.trim());
  if (h) {
    const n = parseInt(h[1], 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const parts = value.split(',').map((p) => Number(p.trim()));
  if (parts.length === 3) return parseRgb(parts as unknown as Rgb);
  throw new Error(`invalid colour "${value}": use #rrggbb or r,g,b`);
}

/** Decodes any format sharp reads into size x size RGB uint8 (see the module comment for the resize rule). */
export async function decodeImage(bytes: Uint8Array, spec: DecodeSpec): Promise<Uint8Array> {
  if (spec.resize === 'clip') return decodeClip(bytes, spec);
  const [r, g, b] = spec.background;
  const { data, info } = await sharp(bytes, { failOn: 'truncated' })
    .autoOrient()
    .resize(spec.size, spec.size, { fit: spec.resize, position: 'centre', kernel: 'lanczos3' })
    .flatten({ background: { r, g, b } })
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.width !== spec.size || info.height !== spec.size || info.channels !== 3) {
    throw new Error(`decoder produced ${info.width}x${info.height}x${info.channels}, expected ${spec.size}x${spec.size}x3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** largest reduction of one bicubic step in the CLIP decode (libvips starts box-shrinking at 4x) */
const CLIP_MAX_STEP = 4;

async function decodeClip(bytes: Uint8Array, spec: ClipDecodeSpec): Promise<Uint8Array> {
  if (spec.shortestEdge < spec.size) throw new Error(`shortestEdge ${spec.shortestEdge} is smaller than the crop ${spec.size}`);
  // step 1: full-size RGB. Decoding fully (not resizing in the same pipeline) keeps sharp from shrinking JPEGs
  // in the DCT on load, which PIL never does (measured: up to 36 levels of difference at sharp edges)
  const full = await sharp(bytes, { failOn: 'truncated', ignoreIcc: true })
    .autoOrient()
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = full.info;
  if (channels !== 3) throw new Error(`decoder produced ${channels} channels, expected 3`);
  const geo = clipResizeGeometry(width, height, spec.shortestEdge, spec.size);
  // step 2: resize to HF's size. libvips box-averages by an integer factor before its kernel whenever one resize
  // reduces 4x or more (a 12 MP photo to 224 px is ~13x) while PIL convolves once with the widened bicubic; bicubic
  // steps that each reduce less than 4x came out closer to PIL on 2560 px photos (a development run of
  // scripts/preprocess-parity.ts whose single-resize numbers were not kept; the committed JSON has the stepped
  // pipeline against PIL)
  let src = full.data;
  let sw = width;
  let sh = height;
  const factor = Math.max(width / geo.width, height / geo.height);
  let steps = 1;
  while (factor ** (1 / steps) >= CLIP_MAX_STEP) steps++;
  const r = factor ** (1 / steps);
  for (let k = steps - 1; k >= 1; k--) {
    const w = Math.round(geo.width * r ** k);
    const h = Math.round(geo.height * r ** k);
    src = await sharp(src, { raw: { width: sw, height: sh, channels: 3 } }).resize(w, h, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
    sw = w;
    sh = h;
  }
  // step 3: the last resize, then the crop at HF's offsets (extract after resize = on the resized pixels)
  const { data, info } = await sharp(src, { raw: { width: sw, height: sh, channels: 3 } })
    .resize(geo.width, geo.height, { fit: 'fill', kernel: 'cubic' })
    .extract({ left: geo.left, top: geo.top, width: spec.size, height: spec.size })
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.width !== spec.size || info.height !== spec.size || info.channels !== 3) {
    throw new Error(`decoder produced ${info.width}x${info.height}x${info.channels}, expected ${spec.size}x${spec.size}x3`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Cache files are checked when read (header + CRC-32; the stat index is a best-effort accelerator) and
 * recomputed when bad, so they skip the per-file flush: decoding a data set writes thousands of them.
 */
const CACHE_WRITE = { fsync: false } as const;

export type CacheLookup = { status: 'hit'; pixels: Uint8Array } | { status: 'missing' } | { status: 'corrupt'; reason: string };

export class ImageTensorCache {
  constructor(readonly dir: string) {}

  entryPath(sha: string, spec: DecodeSpec): string {
    return join(this.dir, sha.slice(0, 2), `${sha}.${specKey(spec)}.rgb`);
  }

  async get(sha: string, spec: DecodeSpec): Promise<CacheLookup> {
    let buf: Buffer;
    try {
      buf = await readFile(this.entryPath(sha, spec));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
      return { status: 'corrupt', reason: (err as Error).message };
    }
    const n = spec.size * spec.size * 3;
    if (buf.length !== HEADER + n) return { status: 'corrupt', reason: `length ${buf.length}, expected ${HEADER + n}` };
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (view.getUint32(0, true) !== MAGIC || view.getUint8(4) !== VERSION || view.getUint8(5) !== 3) {
      return { status: 'corrupt', reason: 'bad header' };
    }
    if (view.getUint32(8, true) !== spec.size || view.getUint32(12, true) !== spec.size) {
      return { status: 'corrupt', reason: 'dimension mismatch' };
    }
    const pixels = new Uint8Array(buf.buffer, buf.byteOffset + HEADER, n);
    if (crc32(pixels) !== view.getUint32(16, true)) return { status: 'corrupt', reason: 'checksum mismatch' };
    return { status: 'hit', pixels };
  }

  async put(sha: string, spec: DecodeSpec, pixels: Uint8Array): Promise<void> {
    const path = this.entryPath(sha, spec);
    const out = new Uint8Array(HEADER + pixels.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint8(4, VERSION);
    view.setUint8(5, 3);
    view.setUint32(8, spec.size, true);
    view.setUint32(12, spec.size, true);
    view.setUint32(16, crc32(pixels), true);
    out.set(pixels, HEADER);
    await writeFileAtomic(path, out, CACHE_WRITE);
  }
}

type StatEntry = [bytes: number, mtimeMs: number, sha: string];

/** path -> content hash memo, validated by file size and mtime. Only an accelerator: losing it costs a re-hash. */
export class StatIndex {
  private entries = new Map<string, StatEntry>();
  private dirty = false;

  constructor(readonly file: string) {}

  private static async read(file: string): Promise<Map<string, StatEntry>> {
    try {
      const doc = JSON.parse(await readFile(file, 'utf8')) as { version?: number; entries?: Record<string, StatEntry> };
      if (doc.version !== 1 || !doc.entries || typeof doc.entries !== 'object') return new Map();
      const m = new Map<string, StatEntry>();
      for (const [k, v] of Object.entries(doc.entries)) {
        if (Array.isArray(v) && v.length === 3 && typeof v[2] === 'string' && /^[0-9a-f]{64}$/.test(v[2])) m.set(k, v);
      }
      return m;
    } catch {
      return new Map(); // missing or corrupt: start over
    }
  }

  async load(): Promise<void> {
    this.entries = await StatIndex.read(this.file);
  }

  lookup(path: string, st: Stats): string | undefined {
    const e = this.entries.get(path);
    return e && e[0] === st.size && e[1] === st.mtimeMs ? e[2] : undefined;
  }

  set(path: string, st: Stats, sha: string): void {
    const e = this.entries.get(path);
    if (e && e[0] === st.size && e[1] === st.mtimeMs && e[2] === sha) return;
    this.entries.set(path, [st.size, st.mtimeMs, sha]);
    this.dirty = true;
  }

  /** Merges with what other processes saved meanwhile (ours win) and writes atomically. */
  async save(): Promise<void> {
    if (!this.dirty) return;
    const onDisk = await StatIndex.read(this.file);
    for (const [k, v] of this.entries) onDisk.set(k, v);
    await writeFileAtomic(this.file, JSON.stringify({ version: 1, entries: Object.fromEntries(onDisk) }), CACHE_WRITE);
    this.entries = onDisk;
    this.dirty = false;
  }
}
