/**
 * The deliberately MISALIGNED control (PAPER finding 3): augmented pairs that no longer describe each other.
 * - flip without the word rule: the mirrored image keeps captions that say "left"/"right" unchanged;
 * - captions swapped between images: captions of another (random) image of the split join this image's pool.
 * Used only to show that alignment matters; never part of `nn`.
 */
import type { Rng } from '../util/rng.js';
import type { Augmenter, Pair } from './types.js';
import { withCaptions } from './types.js';
import { flipHorizontal } from './image.js';

export function misalignedFlipAugmenter(): Augmenter {
  return {
    name: 'misaligned-flip',
    kind: 'control',
    augment(pair: Pair): Pair[] {
      return [{ ...pair, image: flipHorizontal(pair.image, pair.size), captions: pair.captions.slice(), origins: pair.origins.slice(), view: 'misaligned-flip', scene: undefined }];
    },
  };
}

/** `count` captions of other images (sourceCaptions[s] = ground-truth captions of source s) */
export function swappedCaptionsAugmenter(sourceCaptions: readonly (readonly string[])[], count = 2): Augmenter {
  return {
    name: 'misaligned-swap',
    kind: 'control',
    augment(pair: Pair, rng: Rng): Pair[] {
      const n = sourceCaptions.length;
      if (n < 2) return [];
      const out: string[] = [];
      for (let k = 0; k < count; k++) {
        let other = rng.int(n - 1);
        if (other >= pair.source) other++;
        const caps = sourceCaptions[other];
        if (caps.length) out.push(rng.pick(caps));
      }
      return out.length ? [withCaptions(pair, out, 'misaligned-swap')] : [];
    },
  };
}
