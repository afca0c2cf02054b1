import type { ObjectiveWeights } from '../goals/objective.js';

/** how a text attack scores candidates */
export type TextObjectiveChoice = 'auto' | 'clean' | 'paired' | ObjectiveWeights;

/** 'auto' = lower the similarity to the paired image (falls back to 'clean' when the batch has no images) */
export function textWeights(c: TextObjectiveChoice): ObjectiveWeights {
  if (c === 'clean') return { clean: 1, paired: 0 };
  if (c === 'paired' || c === 'auto') return { clean: 0, paired: 1 };
  return { ...c };
}
