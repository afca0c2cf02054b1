/**
 * The `scenes` closed vocabulary by label, for the text attacks' label-preserving constraint
 * (src/attacks/constraints/labels.ts builds the lexicon from it): a substitute may be a synonym inside the
 * vocabulary (red -> crimson) or a word outside it, never a word that names another colour, shape, size,
 * comparison or position (green -> jet).
 */
import { BIGGER_WORDS, COLOR_WORDS, SHAPE_WORDS, SIZE_WORDS, SMALLER_WORDS } from './vocab.js';

/** the position words of the caption templates (captions.ts), by the relation they state */
const POSITION_WORDS: Record<string, readonly string[]> = {
  left: ['left'],
  right: ['right'],
  above: ['above', 'over', 'top'],
  below: ['below', 'under', 'beneath', 'bottom'],
  middle: ['middle', 'between'],
};

const byLabel = (family: string, table: Readonly<Record<string, readonly string[]>>): Record<string, readonly string[]> =>
  Object.fromEntries(Object.entries(table).map(([label, words]) => [`${family}:${label}`, words]));

/** label ("color:red") -> the words captions use for it */
export function scenesLabelWords(): Record<string, readonly string[]> {
  return {
    ...byLabel('color', COLOR_WORDS),
    ...byLabel('shape', SHAPE_WORDS),
    ...byLabel('size', SIZE_WORDS),
    ...byLabel('compare', { bigger: BIGGER_WORDS, smaller: SMALLER_WORDS }),
    ...byLabel('position', POSITION_WORDS),
  };
}
