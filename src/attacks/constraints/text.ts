/**
 * Text constraints filter candidate transformations (TextAttack's pre-transformation and transformation
 * constraints): a word may be modified only if it is not a stop word, is long enough, and has not been
 * modified already; a candidate is allowed only if the words-changed budget is not exceeded.
 */
import { ENGLISH_STOP_WORDS, isStopWord } from './stopwords.js';

export interface TextEditState {
  /** the original words of the caption */
  original: readonly string[];
  /** the current words (same length: transformations replace one word each) */
  current: readonly string[];
  /** word indices modified so far */
  modified: ReadonlySet<number>;
}

export interface TextConstraint {
  readonly name: string;
  /** may word `index` be transformed at all? */
  canModify?(state: TextEditState, index: number): boolean;
  /** is replacing word `index` by `candidate` allowed? */
  allows?(state: TextEditState, index: number, candidate: string): boolean;
}

export function stopWordConstraint(list: ReadonlySet<string> = ENGLISH_STOP_WORDS): TextConstraint {
  return { name: 'no-stop-words', canModify: (s, i) => !isStopWord(s.original[i], list) };
}

/** do not transform a word twice (TextAttack's RepeatModification) */
export function noRepeatModification(): TextConstraint {
  return { name: 'no-repeat', canModify: (s, i) => !s.modified.has(i) };
}

export function minWordLength(n: number): TextConstraint {
  return { name: `min-length-${n}`, canModify: (s, i) => s.original[i].length >= n };
}

/** at most `max` words differ from the original (the PAPER budget: 1) */
export function maxWordsChanged(max: number): TextConstraint {
  if (!Number.isInteger(max) || max < 0) throw new Error(`maxWordsChanged: expected an integer >= 0, got ${max}`);
  return {
    name: `max-words-changed-${max}`,
    canModify: (s, i) => s.modified.has(i) || s.modified.size < max,
    allows: (s, i, cand) => {
      let changed = 0;
      for (let k = 0; k < s.original.length; k++) {
        const w = k === i ? cand : s.current[k];
        if (w !== s.original[k]) changed++;
      }
      return changed <= max;
    },
  };
}

export function canModify(constraints: readonly TextConstraint[], state: TextEditState, index: number): boolean {
  return constraints.every((c) => !c.canModify || c.canModify(state, index));
}

export function allows(constraints: readonly TextConstraint[], state: TextEditState, index: number, candidate: string): boolean {
  return constraints.every((c) => !c.allows || c.allows(state, index, candidate));
}

/** the default set for word-level attacks */
export function defaultTextConstraints(maxWords: number, stopWords: ReadonlySet<string> = ENGLISH_STOP_WORDS): TextConstraint[] {
  return [stopWordConstraint(stopWords), noRepeatModification(), maxWordsChanged(maxWords)];
}
