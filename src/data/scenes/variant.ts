/**
 * A scene graph rendered again: the graph fixes the objects' shapes, colours, sizes and positions; everything the
 * graph does not say (background and its jitter, texture, colour gain and noise, rotation, size jitter) is drawn
 * afresh from the generator's own distributions (generate.ts dress()), so a variant is an image the generator
 * could have produced for that graph.
 */
import type { Rng } from '../../util/rng.js';
import type { SceneGraph } from '../types.js';
import { MAX_ROTATION, sampleTexture } from './generate.js';
import type { RenderSpec } from './raster.js';
import { BACKGROUND_RGB, COLOR_RGB, MIN_CONTRAST, SIZE_SCALE, type Color, type Shape } from './vocab.js';

/**
 * Render-time nuisance for `scene` drawn as the generator draws it (background and its jitter, texture, colour gain
 * and noise, rotation, size jitter) at px x px; the objects' shapes, colours, sizes and positions are the graph's.
 */
export function variantSpec(scene: SceneGraph, px: number, rng: Rng): RenderSpec {
  const dist = (a: readonly number[], b: readonly number[]) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
  const bgs = Object.keys(BACKGROUND_RGB).filter((n) => scene.objects.every((o) => dist(BACKGROUND_RGB[n], COLOR_RGB[o.color as Color] ?? [128, 128, 128]) >= MIN_CONTRAST));
  const bg = bgs.length ? rng.pick(bgs) : 'gray';
  const jitter = rng.uniform(-8, 8);
  const spec: RenderSpec = {
    backgroundRgb: BACKGROUND_RGB[bg].map((c) => c + jitter) as unknown as [number, number, number],
    texture: sampleTexture(rng, px),
    objects: scene.objects.map((o) => {
      const base = COLOR_RGB[o.color as Color] ?? [128, 128, 128];
      const gain = rng.uniform(0.93, 1.05);
      const rot = (MAX_ROTATION as Record<string, number>)[o.shape] ?? 0;
      return {
        shape: o.shape as Shape,
        x: o.x,
        y: o.y,
        scale: SIZE_SCALE[o.size] * rng.uniform(0.94, 1.06),
        rotation: rot ? rng.uniform(-rot, rot) : 0,
        rgb: base.map((c) => Math.max(0, Math.min(255, c * gain + rng.uniform(-12, 12)))) as [number, number, number],
      };
    }),
  };
  return spec;
}

