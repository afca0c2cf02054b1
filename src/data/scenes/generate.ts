/**
 * The `scenes` data set: procedurally rendered images of 1-3 coloured shapes with ground-truth scene graphs
 * and 5 captions each, written as PNGs plus a Karpathy-split JSON (dataset_scenes.json) that loadDataset reads
 * like any user data set.
 *
 * Difficulty by design:
 * - composition: about a third of multi-object scenes come with a "twin" in the same split that has the same
 *   objects with two colours swapped, two shapes swapped, two positions swapped, or the layout mirrored, so a
 *   bag-of-words match is not enough for R@1;
 * - nuisance variation: background colour and texture (plain, gradient, noise, stripes, checker), rotation,
 *   scale, position and colour noise; captions never mention the background;
 * - uniqueness: no two images of a split have matching scenes (sceneKey), as long as the split is small enough
 *   for the scene space (always true for val/test at the default sizes; train may repeat a few 1-object scenes).
 * Visibility: the smallest object spans about 7 px at 32 px input; colours keep a minimum contrast to the
 * background.
 * Determinism: everything is drawn from util/rng seeded by `seed`; train, val and test use independent streams,
 * so the test split does not change when --train changes. Same seed + same sharp/zlib -> byte-identical files.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { BoundedTasks } from '../../util/bounded.js';
import { Rng } from '../../util/rng.js';
import { writeFileAtomic } from '../../util/atomic.js';
import type { SceneGraph, SceneObject } from '../types.js';
import { captionsForScene, tokenize } from './captions.js';
import { sceneKey } from './match.js';
import { renderScene, type RenderObject, type RenderSpec, type Texture } from './raster.js';
import { BACKGROUND_RGB, COLOR_RGB, COLORS, MIN_CONTRAST, SHAPES, SIZE_SCALE, SIZES, type Color, type Shape } from './vocab.js';

export const DEFAULT_SCENE_COUNTS = { train: 4000, val: 200, test: 500 } as const;
export const DEFAULT_SCENE_SIZE = 64;
export const SCENES_JSON = 'dataset_scenes.json';
export const SCENES_GENERATOR_VERSION = 1;

/** centres closer than this on an axis state no relation; farther than AXIS_CLEAR state one; nothing in between */
const AXIS_TIE = 0.06;
const AXIS_CLEAR = 0.14;
/** probability that a multi-object scene is followed by a contrastive twin */
const TWIN_P = 0.35;
/** objects per scene: 1, 2, 3 */
const N_OBJECTS_P = [0.15, 0.45, 0.4];
/** rotation jitter per shape (radians); shared with the augment oracle renderer */
export const MAX_ROTATION: Record<Shape, number> = { circle: 0, square: 0.2, triangle: 0.26, star: 0.35, cross: 0.2, diamond: 0.12 };
/** bounding radius of a shape in units of its scale (layout uses it for non-overlap) */
const LAYOUT_EXTENT = 1.3;

export interface GenerateScenesOptions {
  /** output directory (created); PNGs go to <out>/images, the JSON to <out>/dataset_scenes.json */
  out: string;
  train?: number;
  val?: number;
  test?: number;
  seed?: number;
  /** rendered image edge in pixels (default 64; the loader resizes to the model's size) */
  size?: number;
  /** captions per image (default 5) */
  captions?: number;
  /** PNG encodes in flight (default 4) */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SceneSplitStats {
  count: number;
  objects: Record<1 | 2 | 3, number>;
  twins: number; // images generated as contrastive twins of the preceding image
  duplicateScenes: number; // images whose sceneKey already occurred in the split
  duplicateCaptions: number; // captions whose exact text also describes another image of the split
}

export interface GenerateScenesResult {
  file: string; // the Karpathy JSON
  imagesDir: string;
  seed: number;
  size: number;
  counts: { train: number; val: number; test: number };
  stats: Record<'train' | 'val' | 'test', SceneSplitStats>;
  ms: number;
}

interface Item {
  placed: Placed[];
  spec: RenderSpec;
  scene: SceneGraph;
  key: string;
  twin: boolean;
}

interface Placed {
  shape: Shape;
  color: Color;
  size: SceneObject['size'];
  scale: number;
  x: number;
  y: number;
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function sampleN(rng: Rng): number {
  const u = rng.next();
  let acc = 0;
  for (let i = 0; i < N_OBJECTS_P.length; i++) {
    acc += N_OBJECTS_P[i];
    if (u < acc) return i + 1;
  }
  return N_OBJECTS_P.length;
}

function axisOk(d: number): boolean {
  const a = Math.abs(d);
  return a <= AXIS_TIE || a >= AXIS_CLEAR;
}

function pairOk(a: Placed, b: Placed): boolean {
  const dx = a.x - b.x;
  const dy = a.y - b.y;
  const minDist = (a.scale + b.scale) * LAYOUT_EXTENT + 0.03;
  return dx * dx + dy * dy >= minDist * minDist && axisOk(dx) && axisOk(dy);
}

function inBounds(o: Placed): boolean {
  const r = o.scale * LAYOUT_EXTENT + 0.02;
  return o.x >= r && o.x <= 1 - r && o.y >= r && o.y <= 1 - r;
}

function layoutOk(objs: Placed[]): boolean {
  for (let i = 0; i < objs.length; i++) {
    if (!inBounds(objs[i])) return false;
    for (let j = 0; j < i; j++) if (!pairOk(objs[i], objs[j])) return false;
  }
  return true;
}

/** Places objects (in order) at random non-overlapping positions with no ambiguous axis offsets. */
function place(rng: Rng, objs: Omit<Placed, 'x' | 'y'>[]): Placed[] | undefined {
  for (let restart = 0; restart < 8; restart++) {
    const placed: Placed[] = [];
    for (const o of objs) {
      const r = o.scale * LAYOUT_EXTENT + 0.02;
      let ok = false;
      for (let t = 0; t < 40 && !ok; t++) {
        const cand = { ...o, x: rng.uniform(r, 1 - r), y: rng.uniform(r, 1 - r) };
        if (placed.every((p) => pairOk(p, cand))) {
          placed.push(cand);
          ok = true;
        }
      }
      if (!ok) break;
    }
    if (placed.length === objs.length) return placed;
  }
  return undefined;
}

function relationsOf(objs: { x: number; y: number; size: SceneObject['size'] }[]): SceneGraph['relations'] {
  const rank = { small: 0, medium: 1, large: 2 };
  const rel: SceneGraph['relations'] = [];
  const mid = (AXIS_TIE + AXIS_CLEAR) / 2;
  for (let i = 0; i < objs.length; i++) {
    for (let j = i + 1; j < objs.length; j++) {
      const dx = objs[j].x - objs[i].x;
      const dy = objs[j].y - objs[i].y;
      if (Math.abs(dx) >= mid) rel.push({ subject: i, relation: dx > 0 ? 'left of' : 'right of', object: j });
      if (Math.abs(dy) >= mid) rel.push({ subject: i, relation: dy > 0 ? 'above' : 'below', object: j });
      const ds = rank[objs[i].size] - rank[objs[j].size];
      if (ds !== 0) rel.push({ subject: i, relation: ds > 0 ? 'bigger than' : 'smaller than', object: j });
    }
  }
  return rel;
}

function colorDistance(a: readonly number[], b: readonly number[]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** a random background texture (shared with the augment oracle renderer) */
export function sampleTexture(rng: Rng, px: number): Texture {
  const u = rng.next();
  const k = px / 64;
  if (u < 0.3) return { kind: 'plain' };
  if (u < 0.5) return { kind: 'gradient', angle: rng.uniform(0, 2 * Math.PI), amplitude: rng.uniform(10, 22) };
  if (u < 0.7) return { kind: 'noise', amplitude: rng.uniform(6, 12), seed: rng.seed() };
  if (u < 0.85) return { kind: 'stripes', angle: rng.uniform(0, Math.PI), period: rng.uniform(6, 14) * k, amplitude: rng.uniform(5, 9) };
  return { kind: 'checker', cell: rng.uniform(6, 12), amplitude: rng.uniform(4, 8) };
}

/** Render-time nuisance (background, texture, rotation, colour noise) around a fixed layout. */
function dress(rng: Rng, objs: Placed[], px: number): Item {
  const bgs = Object.keys(BACKGROUND_RGB).filter((name) =>
    objs.every((o) => colorDistance(BACKGROUND_RGB[name], COLOR_RGB[o.color]) >= MIN_CONTRAST),
  );
  const background = bgs.length ? rng.pick(bgs) : 'gray';
  const bgJitter = rng.uniform(-8, 8);
  const backgroundRgb = BACKGROUND_RGB[background].map((c) => c + bgJitter) as unknown as [number, number, number];
  const renderObjects: RenderObject[] = objs.map((o) => {
    const base = COLOR_RGB[o.color];
    const gain = rng.uniform(0.93, 1.05);
    const rgb = base.map((c) => Math.max(0, Math.min(255, c * gain + rng.uniform(-12, 12)))) as [number, number, number];
    const maxRot = MAX_ROTATION[o.shape];
    return { shape: o.shape, x: o.x, y: o.y, scale: o.scale, rotation: maxRot ? rng.uniform(-maxRot, maxRot) : 0, rgb };
  });
  const texture = sampleTexture(rng, px);
  const sceneObjects: SceneObject[] = objs.map((o) => ({ shape: o.shape, color: o.color, size: o.size, x: round3(o.x), y: round3(o.y) }));
  const scene: SceneGraph = { background, objects: sceneObjects, relations: relationsOf(objs) };
  return { placed: objs, spec: { backgroundRgb, texture, objects: renderObjects }, scene, key: sceneKey(scene), twin: false };
}

function sampleLayout(rng: Rng): Placed[] {
  for (;;) {
    const n = sampleN(rng);
    const used = new Set<string>();
    const objs: Omit<Placed, 'x' | 'y'>[] = [];
    while (objs.length < n) {
      const shape = rng.pick(SHAPES);
      const color = rng.pick(COLORS);
      if (used.has(`${shape}|${color}`)) continue; // every (shape, colour) at most once: "the red circle" is unambiguous
      used.add(`${shape}|${color}`);
      const size = rng.pick(SIZES);
      objs.push({ shape, color, size, scale: SIZE_SCALE[size] * rng.uniform(0.94, 1.06) });
    }
    const placed = place(rng, objs);
    if (placed) return placed;
  }
}

/** A contrastive twin: same objects, one compositional change. Undefined when the change is impossible. */
function twinLayout(rng: Rng, objs: Placed[]): Placed[] | undefined {
  const n = objs.length;
  const i = rng.int(n);
  let j = rng.int(n - 1);
  if (j >= i) j++;
  const a = objs[i];
  const b = objs[j];
  const copy = objs.map((o) => ({ ...o }));
  const kind = rng.pick(['colors', 'shapes', 'positions', 'mirror'] as const);
  if (kind === 'colors' && a.color !== b.color) {
    copy[i].color = b.color;
    copy[j].color = a.color;
  } else if (kind === 'shapes' && a.shape !== b.shape) {
    copy[i].shape = b.shape;
    copy[j].shape = a.shape;
  } else if (kind === 'positions') {
    [copy[i].x, copy[j].x] = [b.x, a.x];
    [copy[i].y, copy[j].y] = [b.y, a.y];
  } else {
    for (const o of copy) o.x = 1 - o.x;
  }
  const labels = new Set(copy.map((o) => `${o.shape}|${o.color}`));
  if (labels.size !== copy.length || !layoutOk(copy)) return undefined;
  return copy;
}

function generateSplit(rng: Rng, count: number, px: number): { items: Item[]; stats: Omit<SceneSplitStats, 'duplicateCaptions'> } {
  const items: Item[] = [];
  const keys = new Set<string>();
  const stats = { count, objects: { 1: 0, 2: 0, 3: 0 } as Record<1 | 2 | 3, number>, twins: 0, duplicateScenes: 0 };
  const push = (item: Item) => {
    if (keys.has(item.key)) stats.duplicateScenes++;
    keys.add(item.key);
    stats.objects[item.scene.objects.length as 1 | 2 | 3]++;
    if (item.twin) stats.twins++;
    items.push(item);
  };
  while (items.length < count) {
    let item = dress(rng, sampleLayout(rng), px);
    for (let attempt = 0; attempt < 30 && keys.has(item.key); attempt++) item = dress(rng, sampleLayout(rng), px);
    push(item);
    if (items.length < count && item.scene.objects.length >= 2 && rng.next() < TWIN_P) {
      const layout = twinLayout(rng, item.placed);
      if (layout) {
        const twin = dress(rng, layout, px);
        if (!keys.has(twin.key)) push({ ...twin, twin: true });
      }
    }
  }
  return { items, stats };
}

function checkCount(name: string, v: number | undefined, def: number): number {
  const n = v ?? def;
  if (!Number.isInteger(n) || n < 0 || n > 1_000_000) throw new Error(`generateScenes: ${name} must be an integer 0..1000000, got ${v}`);
  return n;
}

/** Generates the scenes data set into `out` and returns where it is plus statistics. */
export async function generateScenes(opts: GenerateScenesOptions): Promise<GenerateScenesResult> {
  const t0 = performance.now();
  const counts = {
    train: checkCount('train', opts.train, DEFAULT_SCENE_COUNTS.train),
    val: checkCount('val', opts.val, DEFAULT_SCENE_COUNTS.val),
    test: checkCount('test', opts.test, DEFAULT_SCENE_COUNTS.test),
  };
  const seed = opts.seed ?? 0;
  if (!Number.isFinite(seed)) throw new Error(`generateScenes: seed must be a number, got ${opts.seed}`);
  const px = opts.size ?? DEFAULT_SCENE_SIZE;
  if (!Number.isInteger(px) || px < 16 || px > 1024) throw new Error(`generateScenes: size must be an integer 16..1024, got ${opts.size}`);
  const nCaptions = opts.captions ?? 5;
  if (!Number.isInteger(nCaptions) || nCaptions < 1 || nCaptions > 20) throw new Error(`generateScenes: captions must be 1..20, got ${opts.captions}`);

  const out = resolve(opts.out);
  const imagesDir = join(out, 'images');
  await mkdir(imagesDir, { recursive: true });

  // independent streams per split (forked up front), so e.g. the test split does not depend on --train
  const root = new Rng(seed);
  const splitRngs = { train: root.fork(1), val: root.fork(2), test: root.fork(3) };
  const captionRngs = { train: root.fork(11), val: root.fork(12), test: root.fork(13) };

  const total = counts.train + counts.val + counts.test;
  const tasks = new BoundedTasks(Math.max(1, opts.concurrency ?? 4));
  let done = 0;
  const images: unknown[] = [];
  const stats = {} as Record<'train' | 'val' | 'test', SceneSplitStats>;
  let sentid = 0;

  for (const split of ['train', 'val', 'test'] as const) {
    const { items, stats: s } = generateSplit(splitRngs[split], counts[split], px);
    const captionOwners = new Map<string, number>();
    let duplicateCaptions = 0;
    for (let k = 0; k < items.length; k++) {
      const item = items[k];
      const filename = `${split}_${String(k).padStart(5, '0')}.png`;
      const imgid = images.length;
      const captions = captionsForScene(item.scene, captionRngs[split], nCaptions);
      for (const c of captions) {
        const owner = captionOwners.get(c);
        if (owner !== undefined && owner !== k) duplicateCaptions++;
        else captionOwners.set(c, k);
      }
      images.push({
        filename,
        filepath: 'images',
        split,
        imgid,
        sentids: captions.map((_, c) => sentid + c),
        sentences: captions.map((raw) => ({ raw, tokens: tokenize(raw), imgid, sentid: sentid++ })),
        scene: item.scene,
      });
      const rgb = renderScene(item.spec, px);
      await tasks.submit(async () => {
        const png = await sharp(rgb, { raw: { width: px, height: px, channels: 3 } })
          .png({ compressionLevel: 6, adaptiveFiltering: false })
          .toBuffer();
        // atomic, because seeds of one experiment run as parallel processes that may generate the same
        // directory at once: a reader must never see a PNG that the other process has just truncated.
        // Not flushed one by one: thousands of images, and a rerun with the seed renders the same bytes
        await writeFileAtomic(join(imagesDir, filename), png, { fsync: false });
        opts.onProgress?.(++done, total);
      });
      if (tasks.failed) break;
    }
    stats[split] = { ...s, duplicateCaptions };
    if (tasks.failed) break;
  }
  await tasks.drain();

  const doc = {
    dataset: 'scenes',
    generator: { name: 'manyfold-scenes', version: SCENES_GENERATOR_VERSION, seed, size: px, counts, captionsPerImage: nCaptions },
    images,
  };
  const file = join(out, SCENES_JSON);
  await writeFileAtomic(file, `${JSON.stringify(doc)}\n`);
  return { file, imagesDir, seed, size: px, counts, stats, ms: performance.now() - t0 };
}
