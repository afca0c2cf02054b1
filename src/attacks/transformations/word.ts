import type { Rng } from '../../util/rng.js';

/** A word-level transformation: replacement candidates for one word of a caption. */
export interface WordTransformation {
  readonly name: string;
  /**
   * Replacement candidates for words[index]. Never returns the word itself; deterministic given the rng state.
   * Candidates are single words (no spaces).
   */
  candidates(words: readonly string[], index: number, rng: Rng): Promise<string[]>;
}
