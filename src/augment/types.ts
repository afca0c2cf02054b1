/**
 * N:N augmentation: shared types.
 *
 * A `Pair` is one image with the captions that describe it (1 image : N captions; the ground-truth pair of a
 * data set image has all its captions). An `Augmenter` maps a pair to new pairs:
 * - text 1:N augmenters return pairs with the SAME image (same `view`) and new captions, which join that view's
 *   caption pool;
 * - image N:1 augmenters return pairs with a NEW image (a new `view`) and the captions that still describe it
 *   (unchanged, or transformed with the image: a horizontal flip swaps "left" and "right");
 * - cross-modal providers (image -> caption, caption -> image) produce either kind from a model or an oracle.
 * Every random choice comes from the rng argument, so a pool built from a seed is reproducible.
 */
import type { SceneGraph } from '../data/types.js';
import type { Rng } from '../util/rng.js';

export type AugmentKind = 'text' | 'image' | 'cross-text' | 'cross-image' | 'control';

export interface Pair {
  /** index of the data set image this pair derives from (all pairs of one source are positives of each other) */
  source: number;
  /** RGB uint8, row-major [size, size, 3] */
  image: Uint8Array;
  size: number;
  captions: string[];
  /** per caption: which augmenter produced it ('gt' for ground truth) */
  origins: string[];
  /** which image view: 'orig' for the data set image, else the augmenter's tag (e.g. 'flip', 'crop#1') */
  view: string;
  scene?: SceneGraph;
}

export interface Augmenter {
  readonly name: string;
  readonly kind: AugmentKind;
  /** new pairs derived from `pair` (never mutates it) */
  augment(pair: Pair, rng: Rng): Pair[];
}

/** A text-only pair derived from `pair` (same image and view), holding new captions from `origin`. */
export function withCaptions(pair: Pair, captions: string[], origin: string): Pair {
  return { ...pair, captions, origins: captions.map(() => origin) };
}
