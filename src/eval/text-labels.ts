/**
 * Label lexicons for the text attacks' label-preserving constraint, by the name the CLI, the experiment runner
 * and the reports use. `none` is the paper's protocol (any WordNet lemma may replace a word).
 */
import { labelLexicon, type LabelLexicon } from '../attacks/constraints/labels.js';
import { scenesLabelWords } from '../data/scenes/lexicon.js';
import { textLabelsSchema } from '../config.js';

export const TEXT_LABEL_CHOICES = textLabelsSchema.options;
export type TextLabelChoice = (typeof TEXT_LABEL_CHOICES)[number];

export const TEXT_LABELS_HELP =
  "none | scenes: forbid text substitutes that name another label of this closed vocabulary (scenes: colour, shape, size, comparison and position words, so 'green' -> 'jet' is not an attack but a different caption); none = any WordNet lemma, the paper's protocol";

export function textLabelLexicon(choice: TextLabelChoice | undefined): LabelLexicon | undefined {
  if (choice === undefined || choice === 'none') return undefined;
  if (choice === 'scenes') return labelLexicon('scenes', scenesLabelWords());
  throw new Error(`unknown text label lexicon '${String(choice)}' (expected ${TEXT_LABEL_CHOICES.join(' | ')})`);
}
