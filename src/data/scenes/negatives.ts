/**
 * Hard negative captions for `scenes`: captions of a minimally edited scene graph (one object's shape or colour
 * changed, everything else kept), in the spirit of NegCLIP (Yuksekgonul et al. 2023). In a random batch two
 * images almost never differ by shape alone, so in-batch negatives put next to no pressure on the encoders to
 * see shape (docs/results.md, session 5); a caption that differs from a true one only in one object's shape does.
 * Captions name every object by colour and shape (captions.ts), so the edited attribute is always in the text
 * and the negative is never a valid caption of the original image.
 * Hard negative images are the same edits rendered (as in TripletCLIP / CounterCurate): they press on the
 * text->image direction, where a caption must tell its image from one that differs in a single object's shape.
 */
import sharp from 'sharp';
import { BoundedTasks } from '../../util/bounded.js';
import type { Rng } from '../../util/rng.js';
import type { SceneGraph } from '../types.js';
import { captionScene } from './captions.js';
import { DEFAULT_SCENE_SIZE } from './generate.js';
import { renderScene } from './raster.js';
import { variantSpec } from './variant.js';
import { COLORS, SHAPES } from './vocab.js';

export type SceneEdit = 'shape' | 'color';

/** A copy of the scene with one object's shape or colour replaced by a different value of the vocabulary. */
export function editScene(scene: SceneGraph, rng: Rng, edit: SceneEdit): SceneGraph {
  if (scene.objects.length === 0) throw new Error('editScene: the scene has no objects to edit');
  const objects = scene.objects.map((o) => ({ ...o }));
  const target = objects[rng.int(objects.length)];
  const values: readonly string[] = edit === 'shape' ? SHAPES : COLORS;
  const others = values.filter((v) => v !== target[edit]);
  target[edit] = rng.pick(others);
  return { ...scene, objects, relations: scene.relations.map((r) => ({ ...r })) };
}

/** `count` hard negative captions of the scene, alternating shape and colour edits from a random start. */
export function hardNegativeCaptions(scene: SceneGraph, count: number, rng: Rng): string[] {
  const out: string[] = [];
  if (scene.objects.length === 0) return out;
  const first = rng.int(2);
  for (let k = 0; k < count; k++) out.push(captionScene(editScene(scene, rng, (first + k) % 2 === 0 ? 'shape' : 'color'), rng));
  return out;
}

/** `count` minimally edited copies of the scene, alternating shape and colour edits from a random start. */
export function hardNegativeScenes(scene: SceneGraph, count: number, rng: Rng): SceneGraph[] {
  if (scene.objects.length === 0) return [];
  const first = rng.int(2);
  return Array.from({ length: count }, (_, k) => editScene(scene, rng, (first + k) % 2 === 0 ? 'shape' : 'color'));
}

export interface RenderOptions {
  /** edge the scenes are rendered at before the resize (the generator's default, 64) */
  renderPx?: number;
  /** sharp operations in flight */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * `perImage` hard negative images of each scene, RGB uint8 [scenes.length * perImage, size, size, 3] (image i's
 * negatives are rows i*perImage ...): each an edited scene (hardNegativeScenes) rendered by renderScenesAtSize.
 * `rngOf(i)` seeds image i (its edits, then their nuisance), so the result does not depend on the order the work
 * finishes in.
 */
export async function renderHardNegativeImages(
  scenes: readonly SceneGraph[],
  perImage: number,
  size: number,
  rngOf: (image: number) => Rng,
  opts: RenderOptions = {},
): Promise<Uint8Array> {
  if (!Number.isInteger(perImage) || perImage < 1) throw new Error(`renderHardNegativeImages: perImage must be a positive integer, got ${perImage}`);
  let rng: Rng | undefined;
  let edited: SceneGraph[] = [];
  return renderScenesAtSize(
    scenes.length * perImage,
    size,
    (row) => {
      const i = Math.floor(row / perImage);
      if (row % perImage === 0) {
        if (scenes[i].objects.length === 0) throw new Error(`renderHardNegativeImages: scene ${i} has no objects to edit`);
        rng = rngOf(i);
        edited = hardNegativeScenes(scenes[i], perImage, rng);
      }
      return { scene: edited[row % perImage], rng: rng! };
    },
    opts,
  );
}

/**
 * `count` images, RGB uint8 [count, size, size, 3]: row r renders `item(r).scene` with nuisance drawn from
 * `item(r).rng` (variantSpec) at the generator's resolution and resizes it with sharp and the loader's kernel
 * (lanczos3), so a rendering differs from a data set image in its content, not in how it was resampled (otherwise
 * the towers could tell hard negatives apart by the texture of their pixels and learn nothing about shape).
 * `item` is called once per row, in row order.
 */
export async function renderScenesAtSize(
  count: number,
  size: number,
  item: (row: number) => { scene: SceneGraph; rng: Rng },
  opts: RenderOptions = {},
): Promise<Uint8Array> {
  const px = Math.max(opts.renderPx ?? DEFAULT_SCENE_SIZE, size);
  const per = size * size * 3;
  const out = new Uint8Array(count * per);
  const tasks = new BoundedTasks(opts.concurrency ?? 8);
  let done = 0;
  for (let row = 0; row < count && !tasks.failed; row++) {
    const { scene, rng } = item(row);
    const rgb = renderScene(variantSpec(scene, px, rng), px);
    await tasks.submit(async () => {
      const buf = await sharp(rgb, { raw: { width: px, height: px, channels: 3 } })
        .resize(size, size, { fit: 'fill', kernel: 'lanczos3' })
        .raw()
        .toBuffer();
      if (buf.length !== per) throw new Error(`renderScenesAtSize: sharp returned ${buf.length} bytes for a ${size}x${size} RGB image`);
      out.set(buf, row * per);
      opts.onProgress?.(++done, count);
    });
  }
  await tasks.drain();
  return out;
}
