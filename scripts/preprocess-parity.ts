/**
 * How far Manyfold's CLIP preprocessing (sharp, src/data/imageCache.ts resize 'clip') is from CLIPImageProcessor's
 * (PIL bicubic, test/reference/clip_preprocess_ref.py) on real photos:
 *   - per image: the resize geometry and crop offsets (must be equal), max / mean |difference| of the uint8 pixels
 *     in [0, 255], the share of values that differ;
 *   - the same for an alternative sharp pipeline (one pass with JPEG shrink-on-load), to show why it is not used;
 *   - with --model DIR (a CLIP-family artifact, e.g. from `manyfold import`), the cosine between the model's image
 *     embeddings of the sharp-preprocessed and the PIL-preprocessed pixels; with --random-clip, the same through a
 *     randomly initialised ViT-B/32 image tower at 224 px (a stand-in when no trained weights are at hand: its
 *     sensitivity to pixel noise is not a trained model's).
 * Prints a table and writes JSON (default docs/bench/preprocess-parity-<date>.json).
 *
 *   npx tsx scripts/preprocess-parity.ts --images DIR_OR_FILES [--model DIR | --random-clip] [--shortest-edge 224]
 *       [--crop 224] [--python /usr/bin/python3] [--out FILE] [--note 'where the photos come from']
 * --images takes a directory (its .jpg / .jpeg / .png / .webp files) or a comma-separated list of files.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { z } from 'zod';
import { clipResizeGeometry, decodeImage, decodeSpecForModel, type ClipDecodeSpec } from '../src/data/imageCache.js';
import { tf } from '../src/engine/tf.js';

const { values: o } = parseArgs({
  options: {
    images: { type: 'string' },
    model: { type: 'string' },
    'random-clip': { type: 'boolean', default: false },
    'shortest-edge': { type: 'string' },
    crop: { type: 'string' },
    python: { type: 'string', default: '/usr/bin/python3' },
    out: { type: 'string' },
    seed: { type: 'string', default: '0' },
    note: { type: 'string' },
  },
});
if (!o.images) {
  process.stderr.write('usage: npx tsx scripts/preprocess-parity.ts --images DIR_OR_FILES [--model DIR | --random-clip] [--shortest-edge N] [--crop N] [--out FILE]\n');
  process.exit(2);
}
if (o.model && o['random-clip']) throw new Error('give --model or --random-clip, not both');
if (o.model || o['random-clip']) {
  for (const f of ['shortest-edge', 'crop'] as const) if (o[f] !== undefined) throw new Error(`--${f} comes from the model; do not give it with --model / --random-clip`);
}
const posInt = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`--${flag}: expected a positive integer, got "${v}"`);
  return Number(v);
};

const images = (() => {
  const p = resolve(o.images);
  const list = statSync(p, { throwIfNoEntry: false })?.isDirectory()
    ? readdirSync(p)
        .filter((f) => /\.(jpe?g|png|webp)$/i.test(f))
        .sort()
        .map((f) => join(p, f))
    : o.images.split(',').map((f) => resolve(f.trim()));
  if (!list.length) throw new Error(`--images ${o.images}: no images`);
  return list;
})();

// ------------------------------------------------------------------ the model (optional) decides the spec
type Embed = (pixels: Uint8Array, count: number) => Float32Array | Promise<Float32Array>;
let embed: Embed | undefined;
let modelLabel: string | undefined;
let spec: ClipDecodeSpec;
if (o.model || o['random-clip']) {
  const { initBackend } = await import('../src/engine/backend.js');
  await initBackend('wasm');
  if (o.model) {
    const { loadArtifact } = await import('../src/model/artifact.js');
    const { Encoder } = await import('../src/model/encoder.js');
    const { model, tokenizer, manifest } = await loadArtifact(o.model);
    if (model.config.family !== 'clip') throw new Error(`${o.model}: not a CLIP-family model; the PIL reference implements CLIPImageProcessor`);
    const enc = new Encoder(model, tokenizer, manifest);
    embed = (px, n) => enc.embedImagesMatrix(px, n, 8);
    modelLabel = `${manifest.id} (${o.model})`;
    spec = decodeSpecForModel(model.config) as ClipDecodeSpec;
  } else {
    const { createDualEncoder } = await import('../src/model/dual-encoder.js');
    const seed = Number(o.seed);
    // ViT-B/32's image tower; the text tower is cut down (unused here, and B/32's costs 250 MB of float32)
    const model = createDualEncoder(
      {
        preset: 'clip',
        family: 'clip',
        embedDim: 512,
        image: { size: 224, patch: 32, width: 768, depth: 12, heads: 12, mlpRatio: 4 },
        text: { width: 64, depth: 1, heads: 1, mlpRatio: 4, maxLen: 77, vocabSize: 1000 },
        initLogitScale: Math.log(100),
        clip: {
          activation: 'quick_gelu',
          textPooling: 'argmax',
          eosTokenId: 999,
          pixelMean: [0.48145466, 0.4578275, 0.40821073],
          pixelStd: [0.26862954, 0.26130258, 0.27577711],
          lnEps: 1e-5,
          resizeShortestEdge: 224,
        },
      },
      seed,
    );
    embed = (px, n) => {
      const out = new Float32Array(n * 512);
      const per = 224 * 224 * 3;
      for (let i = 0; i < n; i += 8) {
        const b = Math.min(8, n - i);
        const rows = tf.tidy(() => {
          const x = tf.div(tf.tensor4d(Float32Array.from(px.subarray(i * per, (i + b) * per)), [b, 224, 224, 3]), 255) as tf.Tensor4D;
          return model.imageTower(x).dataSync() as Float32Array;
        });
        out.set(rows, i * 512);
      }
      return out;
    };
    modelLabel = `random-init ViT-B/32 image tower at 224 px (seed ${seed}; a stand-in, not trained weights)`;
    spec = decodeSpecForModel(model.config) as ClipDecodeSpec;
  }
} else {
  const crop = posInt('crop', o.crop) ?? 224;
  spec = { size: crop, resize: 'clip', shortestEdge: posInt('shortest-edge', o['shortest-edge']) ?? crop };
}

// ------------------------------------------------------------------ the PIL reference
const RefIndex = z.object({
  pillow: z.string(),
  numpy: z.string(),
  python: z.string(),
  images: z.array(z.object({ file: z.string(), width: z.number(), height: z.number(), resizedWidth: z.number(), resizedHeight: z.number(), top: z.number(), left: z.number(), sha256: z.string() })),
});
const work = mkdtempSync(join(tmpdir(), 'manyfold-parity-'));
const refScript = new URL('../test/reference/clip_preprocess_ref.py', import.meta.url).pathname;
const t0 = performance.now();
try {
  execFileSync(o.python, [refScript, '--shortest-edge', String(spec.shortestEdge), '--crop', String(spec.size), '--out', work, ...images], { stdio: ['ignore', 'ignore', 'inherit'] });
} catch (e) {
  throw new Error(`the PIL reference failed (${o.python} ${refScript}); Debian's /usr/bin/python3 has PIL and numpy: ${(e as Error).message}`);
}
const refMs = performance.now() - t0;
const ref = RefIndex.parse(JSON.parse(readFileSync(join(work, 'index.json'), 'utf8')));

/** the rejected alternative: one sharp pipeline, letting libjpeg shrink on load (fastShrinkOnLoad: false still does) */
async function onePass(bytes: Buffer): Promise<Uint8Array> {
  const m = await sharp(bytes).metadata();
  const w = m.autoOrient?.width ?? m.width!;
  const h = m.autoOrient?.height ?? m.height!;
  const g = clipResizeGeometry(w, h, spec.shortestEdge, spec.size);
  const data = await sharp(bytes, { ignoreIcc: true })
    .autoOrient()
    .resize(g.width, g.height, { fit: 'fill', kernel: 'cubic', fastShrinkOnLoad: false })
    .extract({ left: g.left, top: g.top, width: spec.size, height: spec.size })
    .toColourspace('srgb')
    .removeAlpha()
    .raw()
    .toBuffer();
  return new Uint8Array(data);
}

function diff(a: Uint8Array, b: Uint8Array): { maxAbs: number; meanAbs: number; differing: number } {
  let max = 0;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
    if (d) n++;
  }
  return { maxAbs: max, meanAbs: sum / a.length, differing: n / a.length };
}

const per = spec.size * spec.size * 3;
const oursAll = new Uint8Array(images.length * per);
const pilAll = new Uint8Array(images.length * per);
type Diff = ReturnType<typeof diff>;
interface Row {
  file: string;
  format: string;
  width: number;
  height: number;
  resized: [number, number];
  crop: { top: number; left: number };
  sameGeometry: boolean;
  iccProfile: boolean;
  exifOrientation: number | null;
  sharp: Diff;
  onePassShrinkOnLoad: Diff;
  cosine?: number;
}
const rows: Row[] = [];
let sharpMs = 0;
for (const [k, file] of images.entries()) {
  const r = ref.images[k];
  const bytes = readFileSync(file);
  const t = performance.now();
  const ours = await decodeImage(bytes, spec);
  sharpMs += performance.now() - t;
  const pil = new Uint8Array(readFileSync(join(work, `${k}.rgb`)));
  if (pil.length !== per) throw new Error(`${file}: the reference wrote ${pil.length} bytes, expected ${per}`);
  const meta = await sharp(bytes).metadata();
  const ow = meta.autoOrient?.width ?? meta.width!;
  const oh = meta.autoOrient?.height ?? meta.height!;
  const g = clipResizeGeometry(ow, oh, spec.shortestEdge, spec.size);
  const sameGeometry = ow === r.width && oh === r.height && g.width === r.resizedWidth && g.height === r.resizedHeight && g.top === r.top && g.left === r.left;
  oursAll.set(ours, k * per);
  pilAll.set(pil, k * per);
  rows.push({
    file: basename(file),
    format: extname(file).slice(1).toLowerCase(),
    width: r.width,
    height: r.height,
    resized: [r.resizedWidth, r.resizedHeight],
    crop: { top: r.top, left: r.left },
    sameGeometry,
    iccProfile: Boolean(meta.icc),
    exifOrientation: meta.orientation ?? null,
    sharp: diff(ours, pil),
    onePassShrinkOnLoad: diff(await onePass(bytes), pil),
  });
}
rmSync(work, { recursive: true, force: true });

let embedSummary: { model: string; minCosine: number; meanCosine: number; betweenImages: { medianCosine: number; maxCosine: number }; ms: number } | undefined;
if (embed) {
  const t = performance.now();
  const a = await embed(oursAll, images.length);
  const b = await embed(pilAll, images.length);
  const E = a.length / images.length;
  const cosine = (x: Float32Array, i: number, y: Float32Array, j: number) => {
    let d = 0;
    let nx = 0;
    let ny = 0;
    for (let k = 0; k < E; k++) {
      d += x[i * E + k] * y[j * E + k];
      nx += x[i * E + k] ** 2;
      ny += y[j * E + k] ** 2;
    }
    return d / Math.sqrt(nx * ny);
  };
  const cos = rows.map((r, i) => (r.cosine = cosine(a, i, b, i)));
  // the scale: how alike this model finds two *different* photos (a random tower finds them very alike)
  const between: number[] = [];
  for (let i = 0; i < images.length; i++) for (let j = i + 1; j < images.length; j++) between.push(cosine(b, i, b, j));
  between.sort((x, y) => x - y);
  embedSummary = {
    model: modelLabel!,
    minCosine: Math.min(...cos),
    meanCosine: cos.reduce((x, y) => x + y, 0) / cos.length,
    betweenImages: { medianCosine: between[Math.floor(between.length / 2)] ?? NaN, maxCosine: between[between.length - 1] ?? NaN },
    ms: performance.now() - t,
  };
}

const agg = (key: 'sharp' | 'onePassShrinkOnLoad') => ({
  maxAbs: Math.max(...rows.map((r) => r[key].maxAbs)),
  meanAbs: rows.reduce((s, r) => s + r[key].meanAbs, 0) / rows.length,
  worstMeanAbs: Math.max(...rows.map((r) => r[key].meanAbs)),
  differing: rows.reduce((s, r) => s + r[key].differing, 0) / rows.length,
});
const report = {
  what: "Manyfold's CLIP preprocessing (sharp: full decode, resize shortest edge with kernel 'cubic', extract the centre crop) vs CLIPImageProcessor's (PIL BICUBIC), uint8 pixels in [0, 255]",
  date: new Date().toISOString(),
  command: `npx tsx scripts/preprocess-parity.ts ${process.argv.slice(2).map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`,
  ...(o.note ? { note: o.note } : {}),
  spec,
  versions: { sharp: sharp.versions.sharp, libvips: sharp.versions.vips, pillow: ref.pillow, numpy: ref.numpy, python: ref.python },
  images: rows.length,
  allGeometryEqual: rows.every((r) => r.sameGeometry),
  sharp: agg('sharp'),
  onePassShrinkOnLoad: agg('onePassShrinkOnLoad'),
  ...(embedSummary ? { embedding: embedSummary } : {}),
  ms: { sharpPerImage: sharpMs / rows.length, pilTotal: refMs },
  perImage: rows,
};

const pad = (s: string | number, n: number) => String(s).padEnd(n);
process.stdout.write(`${pad('image', 26)}${pad('size', 11)}${pad('crop t,l', 10)}${pad('max', 5)}${pad('mean', 8)}${pad('1-pass max/mean', 17)}${embed ? 'cosine' : ''}\n`);
for (const r of rows) {
  process.stdout.write(
    `${pad(r.file, 26)}${pad(`${r.width}x${r.height}`, 11)}${pad(`${r.crop.top},${r.crop.left}${r.sameGeometry ? '' : '!'}`, 10)}${pad(r.sharp.maxAbs, 5)}${pad(r.sharp.meanAbs.toFixed(3), 8)}` +
      `${pad(`${r.onePassShrinkOnLoad.maxAbs} / ${r.onePassShrinkOnLoad.meanAbs.toFixed(3)}`, 17)}${r.cosine !== undefined ? r.cosine.toFixed(7) : ''}\n`,
  );
}
process.stdout.write(
  `\n${rows.length} images, geometry ${report.allGeometryEqual ? 'identical to HF on every image' : 'DIFFERS on some image (marked !)'}; ` +
    `sharp vs PIL: max |diff| ${report.sharp.maxAbs}, mean |diff| ${report.sharp.meanAbs.toFixed(3)} (worst image ${report.sharp.worstMeanAbs.toFixed(3)}), ${(100 * report.sharp.differing).toFixed(1)}% of values differ\n`,
);
if (embedSummary) {
  const e = embedSummary;
  process.stdout.write(
    `embedding cosine sharp vs PIL (${e.model}): min ${e.minCosine.toFixed(7)}, mean ${e.meanCosine.toFixed(7)}; ` +
      `for scale, two different photos: median ${e.betweenImages.medianCosine.toFixed(4)}, max ${e.betweenImages.maxCosine.toFixed(4)}\n`,
  );
}
const outFile = o.out ?? `docs/bench/preprocess-parity-${new Date().toISOString().slice(0, 10)}.json`;
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(`written to ${outFile}\n`);
process.exit(0); // wasm worker threads (if any) keep Node alive
