/**
 * Label preservation for word substitutions (TextAttack's idea that a perturbation must not change the ground
 * truth, made exact where the data has a closed vocabulary).
 *
 * WordNet lists every sense of a word, so "green" gets "jet" (a black in the scenes vocabulary) and "square" gets
 * "box" (same shape) as well as "straight" (no shape at all). The first turns the caption into a description of a
 * different image: the gold image then *should* drop, and counting that as a successful attack measures the
 * attack's validity, not the model's robustness. A `LabelLexicon` maps each word of a data set's closed vocabulary
 * to its label ("crimson" -> "color:red"); the constraint forbids a candidate whose label differs from the
 * original word's. Synonyms inside the vocabulary (red -> crimson) and words outside it (green -> fleeceable,
 * which removes information without contradicting the image) stay allowed.
 */
import type { TextConstraint } from './text.js';

export interface LabelLexicon {
  /** short name, recorded in the attack's config and the report's protocol */
  readonly name: string;
  /** the label of `word` (any case, singular or regular plural), or undefined when the word is not in the vocabulary */
  labelOf(word: string): string | undefined;
}

/** A lexicon from label -> words; words are matched case-insensitively, and a regular plural matches its singular. */
export function labelLexicon(name: string, wordsByLabel: Readonly<Record<string, readonly string[]>>): LabelLexicon {
  const map = new Map<string, string>();
  for (const [label, words] of Object.entries(wordsByLabel)) {
    for (const w of words) {
      const key = w.toLowerCase();
      const prev = map.get(key);
      if (prev !== undefined && prev !== label) throw new Error(`label lexicon '${name}': word '${w}' has two labels (${prev}, ${label})`);
      map.set(key, label);
    }
  }
  const lookup = (word: string): string | undefined => {
    const w = word.toLowerCase();
    return map.get(w) ?? (w.endsWith('es') ? map.get(w.slice(0, -2)) : undefined) ?? (w.endsWith('s') ? map.get(w.slice(0, -1)) : undefined);
  };
  return { name, labelOf: lookup };
}

/** forbid substitutes that carry a different label than the original word (see the module comment) */
export function labelPreserving(lexicon: LabelLexicon): TextConstraint {
  return {
    name: `label-preserving:${lexicon.name}`,
    allows: (s, i, cand) => {
      const to = lexicon.labelOf(cand);
      return to === undefined || to === lexicon.labelOf(s.original[i]);
    },
  };
}
