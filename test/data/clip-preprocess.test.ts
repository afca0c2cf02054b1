/**
 * CLIP preprocessing (src/data/imageCache.ts, resize 'clip'): output size, HF's resize geometry and crop offsets
 * (exact, on images whose pattern reveals where every output pixel came from), closeness to PIL's bicubic on
 * synthetic images (fixture made by test/reference/clip_preprocess_ref.py; regenerate with
 * REGENERATE_PIL_FIXTURE=1, which needs Debian's /usr/bin/python3 with PIL), the cache key, and that a Manyfold
 * model's decode is unchanged (same bytes as the pipeline before CLIP support, same cache keys).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { clipResizeGeometry, decodeImage, decodeSpecForModel, specKey, type DecodeSpec, type Rgb } from '../../src/data/imageCache.js';
import { loadDataset } from '../../src/data/load.js';
import { fixtureCopy } from './helpers.js';

const FIXTURE = new URL('../fixtures/clip-preprocess/pil-bicubic.json', import.meta.url);

function raw(w: number, h: number, channels: 3 | 4, f: (x: number, y: number) => number[]): Buffer {
  const px = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set(f(x, y), (y * w + x) * channels);
  return px;
}
const png = (w: number, h: number, channels: 3 | 4, f: (x: number, y: number) => number[]) => sharp(raw(w, h, channels, f), { raw: { width: w, height: h, channels } }).png().toBuffer();

/** smooth gradients, a sine texture and hard stripes: what a resize kernel is judged on */
const synthetic = (x: number, y: number) => [
  Math.round((x * 255) / 399) % 256,
  Math.round(128 + 100 * Math.sin(x / 7) * Math.cos(y / 5)),
  (x + y) % 32 < 16 ? 40 : 220,
];
const CASES = [
  { name: 'landscape x2.1', w: 150, h: 100, shortestEdge: 48, crop: 40 },
  { name: 'portrait x1.9', w: 90, h: 170, shortestEdge: 48, crop: 40 },
  { name: 'landscape x6.5', w: 400, h: 260, shortestEdge: 40, crop: 32 },
];

const clipConfig = (size: number, resizeShortestEdge?: number) => ({
  family: 'clip' as const,
  image: { size },
  clip: resizeShortestEdge === undefined ? {} : { resizeShortestEdge },
});

describe('CLIP preprocessing (CLIPImageProcessor semantics with sharp)', () => {
  it('geometry: shortest edge to the target, the long edge truncated as int(s * long / short), crop at floor((d - size) / 2)', () => {
    // values printed by test/reference/clip_preprocess_ref.py for real photos of these sizes (rocket.jpg, Storm.jpg, ...)
    expect(clipResizeGeometry(640, 427, 224, 224)).toEqual({ width: 335, height: 224, top: 0, left: 55 });
    expect(clipResizeGeometry(1920, 1280, 224, 224)).toEqual({ width: 336, height: 224, top: 0, left: 56 });
    expect(clipResizeGeometry(2560, 1600, 224, 224)).toEqual({ width: 358, height: 224, top: 0, left: 67 });
    expect(clipResizeGeometry(451, 300, 224, 224)).toEqual({ width: 336, height: 224, top: 0, left: 56 });
    expect(clipResizeGeometry(427, 640, 224, 224)).toEqual({ width: 224, height: 335, top: 55, left: 0 });
    expect(clipResizeGeometry(512, 512, 336, 336)).toEqual({ width: 336, height: 336, top: 0, left: 0 });
    // shortest_edge larger than the crop (a processor configured 256 / 224): both offsets move
    expect(clipResizeGeometry(300, 300, 256, 224)).toEqual({ width: 256, height: 256, top: 16, left: 16 });
    // odd remainders round down, as Python's // does
    expect(clipResizeGeometry(41, 24, 24, 16)).toEqual({ width: 41, height: 24, top: 4, left: 12 });
  });

  it('output is size x size x 3 for landscape, portrait, grey and RGBA inputs', async () => {
    const spec = decodeSpecForModel(clipConfig(24));
    for (const [w, h, ch] of [[64, 40, 3], [40, 64, 3], [30, 30, 4], [500, 37, 3]] as const) {
      const out = await decodeImage(await png(w, h, ch, (x, y) => [x % 256, y % 256, 9, 200].slice(0, ch)), spec);
      expect(out.length).toBe(24 * 24 * 3);
    }
    const grey = await sharp(raw(50, 30, 3, (x) => [x * 5, x * 5, x * 5]), { raw: { width: 50, height: 30, channels: 3 } }).greyscale().png().toBuffer();
    const g = await decodeImage(grey, spec);
    expect(g.length).toBe(24 * 24 * 3);
    for (let i = 0; i < g.length; i += 3) expect(g[i]).toBe(g[i + 1]); // grey replicated into RGB, as PIL's convert('RGB')
  });

  it('crop offsets are exactly ((h - size) // 2, (w - size) // 2) (landscape and portrait, no resampling involved)', async () => {
    // shortest edge == the image's short edge: the resize is the identity, so every output pixel names its source
    const code = (x: number, y: number) => [x * 5, y * 9, 77];
    const wide = await decodeImage(await png(41, 24, 3, code), { size: 16, resize: 'clip', shortestEdge: 24 });
    const tall = await decodeImage(await png(20, 45, 3, code), { size: 12, resize: 'clip', shortestEdge: 20 });
    const at = (px: Uint8Array, size: number, x: number, y: number) => Array.from(px.subarray((y * size + x) * 3, (y * size + x) * 3 + 3));
    for (const [x, y] of [[0, 0], [15, 0], [0, 15], [7, 9], [15, 15]]) expect(at(wide, 16, x, y)).toEqual(code(x + 12, y + 4));
    for (const [x, y] of [[0, 0], [11, 0], [0, 11], [5, 6], [11, 11]]) expect(at(tall, 12, x, y)).toEqual(code(x + 4, y + 16));
  });

  it('crop after a real resize: 16 px source blocks land where HF puts them', async () => {
    // 96 x 64 of 16 x 16 blocks -> shortest edge 32 (x0.5): 48 x 32 of 8 x 8 blocks, crop 24 at left 12, top 4
    const block = (x: number, y: number) => [Math.floor(x / 16) * 40, Math.floor(y / 16) * 60, 128];
    const out = await decodeImage(await png(96, 64, 3, block), { size: 24, resize: 'clip', shortestEdge: 32 });
    // pixels 3..4 of each 8 px output block are beyond the kernel's reach of the block's edges
    for (let by = 0; by < 4; by++) {
      for (let bx = 0; bx < 6; bx++) {
        const cx = bx * 8 + 3 - 12; // output-block interior in the cropped frame
        const cy = by * 8 + 3 - 4;
        if (cx < 0 || cy < 0 || cx > 23 || cy > 23) continue;
        const o = (cy * 24 + cx) * 3;
        expect(Math.abs(out[o] - bx * 40)).toBeLessThanOrEqual(1);
        expect(Math.abs(out[o + 1] - by * 60)).toBeLessThanOrEqual(1);
      }
    }
  });

  it("within a few levels of PIL's bicubic (reference: test/reference/clip_preprocess_ref.py)", async () => {
    if (process.env.REGENERATE_PIL_FIXTURE) await regenerateFixture();
    const fx = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { cases: { name: string; resizedWidth: number; resizedHeight: number; top: number; left: number; pixels: string }[] };
    expect(fx.cases.map((c) => c.name)).toEqual(CASES.map((c) => c.name));
    for (const [k, c] of CASES.entries()) {
      const ref = fx.cases[k];
      expect(clipResizeGeometry(c.w, c.h, c.shortestEdge, c.crop)).toEqual({ width: ref.resizedWidth, height: ref.resizedHeight, top: ref.top, left: ref.left });
      const pil = Buffer.from(ref.pixels, 'base64');
      const ours = await decodeImage(await png(c.w, c.h, 3, synthetic), { size: c.crop, resize: 'clip', shortestEdge: c.shortestEdge });
      expect(ours.length).toBe(pil.length);
      let max = 0;
      let sum = 0;
      for (let i = 0; i < pil.length; i++) {
        const d = Math.abs(pil[i] - ours[i]);
        max = Math.max(max, d);
        sum += d;
      }
      // measured (sharp 0.35.5 / libvips 8.18 vs Pillow 9.4): see the fixture's `measured`; a wrong kernel
      // (lanczos3, box) or an offset off by one pixel exceeds these on the stripes
      // the 6.5x case goes through two bicubic steps (a single libvips resize would box-shrink first; that variant is
      // not in the fixture)
      expect(max, c.name).toBeLessThanOrEqual(3);
      expect(sum / pil.length, c.name).toBeLessThan(c.name.includes('6.5') ? 0.4 : 0.2);
    }
  });

  it('decodeSpecForModel: CLIP models get the clip rule (and refuse fill), Manyfold models keep theirs', () => {
    expect(decodeSpecForModel(clipConfig(224, 256))).toEqual({ size: 224, resize: 'clip', shortestEdge: 256 });
    expect(decodeSpecForModel(clipConfig(224))).toEqual({ size: 224, resize: 'clip', shortestEdge: 224 });
    expect(() => decodeSpecForModel(clipConfig(224), { resize: 'fill' })).toThrow(/does not apply to a CLIP model/);
    expect(() => decodeSpecForModel(clipConfig(224, 200))).toThrow(/resizeShortestEdge/);
    expect(decodeSpecForModel({ image: { size: 32 } })).toEqual({ size: 32, resize: 'cover', background: [255, 255, 255] });
    expect(decodeSpecForModel({ family: 'manyfold', image: { size: 32 } }, { resize: 'fill', background: '#0a141e' })).toEqual({ size: 32, resize: 'fill', background: [10, 20, 30] });
  });

  it('cache keys: the clip rule has its own key; Manyfold keys are unchanged', () => {
    expect(specKey({ size: 224, resize: 'clip', shortestEdge: 224 })).toBe('224.clip1-224');
    expect(specKey({ size: 224, resize: 'clip', shortestEdge: 256 })).toBe('224.clip1-256');
    expect(specKey({ size: 224, resize: 'cover', background: [255, 255, 255] })).toBe('224.cover.ffffff');
    expect(specKey({ size: 32, resize: 'fill', background: [10, 20, 30] })).toBe('32.fill.0a141e');
  });

  it('loadDataset with a CLIP model config decodes by the clip rule, cached under its own key next to the Manyfold entries', async () => {
    const { dir, cleanup } = await fixtureCopy();
    try {
      const file = join(dir, 'karpathy_small.json');
      const cacheDir = join(dir, 'cache');
      const clip = clipConfig(8, 10);
      const a = await loadDataset(file, { model: clip, cacheDir });
      expect(a.size).toBe(8);
      expect(a.load).toMatchObject({ resize: 'clip', decode: '8.clip1-10', decoded: a.count, cacheHits: 0 });
      const b = await loadDataset(file, { model: clip, cacheDir });
      expect(b.load).toMatchObject({ decoded: 0, cacheHits: a.count });
      expect(Buffer.from(b.images).equals(Buffer.from(a.images))).toBe(true);
      const mf = await loadDataset(file, { size: 8, cacheDir });
      expect(mf.load).toMatchObject({ resize: 'cover', decode: '8.cover.ffffff', decoded: a.count });
      expect(Buffer.from(mf.images).equals(Buffer.from(a.images))).toBe(false);
      // the pixels are decodeImage's under the model's spec, image by image
      const redblue = await decodeImage(readFileSync(join(dir, 'images', 'redblue.png')), decodeSpecForModel(clip));
      const k = a.imageIds.indexOf('images/redblue.png');
      expect(k).toBeGreaterThanOrEqual(0);
      expect(Buffer.from(a.images.subarray(k * 192, (k + 1) * 192)).equals(Buffer.from(redblue))).toBe(true);
      await expect(loadDataset(file, { model: clip, resize: 'fill' })).rejects.toThrow(/does not apply to a CLIP model/);
      await expect(loadDataset(file, { model: clip, size: 16 })).rejects.toThrow(/differs from the model's input size 8/);
    } finally {
      await cleanup();
    }
  });

  it("the Manyfold path is unchanged: same bytes as the pre-CLIP pipeline (cover / fill, opaque and alpha)", async () => {
    // the sharp chain decodeImage ran before CLIP support, verbatim
    const before = async (bytes: Uint8Array, spec: { size: number; resize: 'cover' | 'fill'; background: Rgb }) => {
      const [r, g, b] = spec.background;
      const { data } = await sharp(bytes, { failOn: 'truncated' })
        .autoOrient()
        .resize(spec.size, spec.size, { fit: spec.resize, position: 'centre', kernel: 'lanczos3' })
        .flatten({ background: { r, g, b } })
        .toColourspace('srgb')
        .removeAlpha()
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      return new Uint8Array(data);
    };
    const opaque = await png(53, 31, 3, (x, y) => [(x * 37 + y * 11) % 256, (x * x + 3 * y) % 256, ((x ^ y) * 13) % 256]);
    const alpha = await png(29, 47, 4, (x, y) => [(x * 37) % 256, (3 * y) % 256, ((x ^ y) * 13) % 256, (x * 29 + y * 7) % 256]);
    for (const bytes of [opaque, alpha]) {
      for (const resize of ['cover', 'fill'] as const) {
        for (const background of [[255, 255, 255], [10, 20, 30]] as const) {
          const spec: DecodeSpec = decodeSpecForModel({ image: { size: 16 } }, { resize, background });
          expect(Buffer.from(await decodeImage(bytes, spec)).equals(Buffer.from(await before(bytes, { size: 16, resize, background })))).toBe(true);
        }
      }
    }
    // and the clip rule really is a different decode of the same bytes
    const clip = await decodeImage(opaque, { size: 16, resize: 'clip', shortestEdge: 16 });
    expect(Buffer.from(clip).equals(Buffer.from(await before(opaque, { size: 16, resize: 'cover', background: [255, 255, 255] })))).toBe(false);
  });
});

/** Writes the synthetic PNGs, runs the PIL reference on them and stores its pixels as the fixture. */
async function regenerateFixture(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'manyfold-pil-'));
  try {
    const cases = [];
    for (const [k, c] of CASES.entries()) {
      const file = join(dir, `case${k}.png`);
      writeFileSync(file, await png(c.w, c.h, 3, synthetic));
      const out = join(dir, `out${k}`);
      execFileSync('/usr/bin/python3', [new URL('../reference/clip_preprocess_ref.py', import.meta.url).pathname, '--shortest-edge', String(c.shortestEdge), '--crop', String(c.crop), '--out', out, file]);
      const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { pillow: string; images: { resizedWidth: number; resizedHeight: number; top: number; left: number }[] };
      const info = index.images[0];
      const pil = readFileSync(join(out, '0.rgb'));
      const ours = await decodeImage(readFileSync(file), { size: c.crop, resize: 'clip', shortestEdge: c.shortestEdge });
      let max = 0;
      let sum = 0;
      for (let i = 0; i < pil.length; i++) {
        max = Math.max(max, Math.abs(pil[i] - ours[i]));
        sum += Math.abs(pil[i] - ours[i]);
      }
      cases.push({ ...c, pillow: index.pillow, resizedWidth: info.resizedWidth, resizedHeight: info.resizedHeight, top: info.top, left: info.left, measured: { maxAbs: max, meanAbs: +(sum / pil.length).toFixed(4) }, pixels: pil.toString('base64') });
    }
    writeFileSync(FIXTURE, `${JSON.stringify({ generator: 'test/reference/clip_preprocess_ref.py via REGENERATE_PIL_FIXTURE=1 npx vitest run test/data/clip-preprocess.test.ts', cases }, null, 1)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
