import { Rng } from '../../util/rng.js';

/**
 * A generator for one item of a batch, derived from the attack seed, a stage salt and the item's index in the
 * batch (never from call order), so results do not depend on chunking or on which items are still active.
 */
export function itemRng(seed: number, salt: number, item: number): Rng {
  let h = Math.imul((seed >>> 0) ^ 0x27d4eb2d, 0x165667b1) >>> 0;
  h = Math.imul(h ^ (salt + 0x9e3779b9), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (item + 0x632be5ab), 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return new Rng(h >>> 0);
}

/** Stage salts (fixed so results stay reproducible across versions of a recipe). */
export const SALT = {
  pgdStart: 1,
  pgdNoise: 2,
  textSearch: 3,
  textSearch2: 4,
  square: 5,
  charEdit: 6,
} as const;
