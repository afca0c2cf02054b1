/**
 * The `scenes` benchmark's ORACLE cross-modal providers. They stand in for a captioner and a text-to-image
 * generator, using the ground-truth scene graph the benchmark carries, so they are perfectly aligned by
 * construction (real data needs a model: see http.ts):
 * - scenes-oracle-captioner (image -> caption): fresh captions of the image's scene graph (captionsForScene:
 *   other templates and synonyms than the data set's captions).
 * - scenes-oracle-renderer (caption -> image): the scene graph the captions describe rendered again with new
 *   nuisance (background colour and texture, rotation, colour noise; same objects, sizes and positions, so every
 *   caption of the image still holds), with renderScene at twice the size and box-downsampled.
 */
import { captionsForScene } from '../data/scenes/captions.js';
import { renderScene } from '../data/scenes/raster.js';
import { variantSpec } from '../data/scenes/variant.js';
import type { SceneGraph } from '../data/types.js';
import type { Rng } from '../util/rng.js';
import type { Augmenter, Pair } from './types.js';
import { withCaptions } from './types.js';

export const ORACLE_CAPTIONER = 'scenes-oracle-captioner';
export const ORACLE_RENDERER = 'scenes-oracle-renderer';


/** A new rendering of `scene` at size x size (RGB uint8). */
export function renderSceneVariant(scene: SceneGraph, size: number, rng: Rng): Uint8Array {
  const px = size * 2;
  const big = renderScene(variantSpec(scene, px, rng), px);
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++)
      for (let c = 0; c < 3; c++) {
        const a = big[((2 * y) * px + 2 * x) * 3 + c] + big[((2 * y) * px + 2 * x + 1) * 3 + c] + big[((2 * y + 1) * px + 2 * x) * 3 + c] + big[((2 * y + 1) * px + 2 * x + 1) * 3 + c];
        out[(y * size + x) * 3 + c] = Math.round(a / 4);
      }
  return out;
}

/** new captions of the scene graph that the data set's captions do not already contain */
export function oracleCaptions(scene: SceneGraph, existing: readonly string[], count: number, rng: Rng): string[] {
  const have = new Set(existing);
  return captionsForScene(scene, rng, count + existing.length + 2).filter((c) => !have.has(c)).slice(0, count);
}

export function oracleCaptionAugmenter(count = 3): Augmenter {
  return {
    name: 'oracle-caption',
    kind: 'cross-text',
    augment(pair: Pair, rng: Rng): Pair[] {
      if (!pair.scene) return [];
      const caps = oracleCaptions(pair.scene, pair.captions, count, rng);
      return caps.length ? [withCaptions(pair, caps, 'oracle-caption')] : [];
    },
  };
}

export function oracleImageAugmenter(variants = 2): Augmenter {
  return {
    name: 'oracle-image',
    kind: 'cross-image',
    augment(pair: Pair, rng: Rng): Pair[] {
      const scene = pair.scene;
      if (!scene) return [];
      return Array.from({ length: variants }, (_, k) => ({
        ...pair,
        image: renderSceneVariant(scene, pair.size, rng),
        captions: pair.captions.slice(),
        origins: pair.origins.slice(),
        view: `oracle-image#${k}`,
      }));
    },
  };
}
