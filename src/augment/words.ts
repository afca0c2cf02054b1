/**
 * Word-level helpers for augmentation: left/right words (the flip rule), protected spatial words, and a
 * synchronous WordNet synonym table built once before training (WordNet reads are async; EDA must be sync and
 * deterministic). Synonyms come from the attack package's WordNetSynonymSwap (same morphology and case rules).
 */
import { isStopWord } from '../attacks/constraints/stopwords.js';
import { WordNetSynonymSwap } from '../attacks/transformations/wordnet.js';
import { splitWords, wordsOf } from '../attacks/util/words.js';

const LEFT_RIGHT = /\b(left|right)(most|ward|wards|-hand|hand)?\b/gi;

/** true when the caption names a horizontal side ("left", "right", "leftmost", "right-hand", ...) */
export function hasLeftRight(caption: string): boolean {
  LEFT_RIGHT.lastIndex = 0;
  const r = LEFT_RIGHT.test(caption);
  LEFT_RIGHT.lastIndex = 0;
  return r;
}

/** the caption of the horizontally mirrored image: "left" <-> "right" (case and suffixes kept) */
export function flipLeftRight(caption: string): string {
  return caption.replace(LEFT_RIGHT, (m: string, side: string, suffix: string | undefined) => {
    const other = side.toLowerCase() === 'left' ? 'right' : 'left';
    const cased = side[0] === side[0].toUpperCase() ? other[0].toUpperCase() + other.slice(1) : other;
    return cased + (suffix ?? '');
  });
}

/**
 * Words EDA never edits besides stop words: in a compositional caption the spatial words carry the arrangement,
 * and their WordNet "synonyms" are other senses (left -> leave, right -> correct).
 */
export const PROTECTED_WORDS: ReadonlySet<string> = new Set(['left', 'right', 'top', 'bottom', 'middle', 'leftmost', 'rightmost', 'beneath', 'next', 'its']);

export function editable(word: string): boolean {
  const w = word.toLowerCase();
  return /^[a-z][a-z-]*$/.test(w) && !isStopWord(w) && !PROTECTED_WORDS.has(w);
}

/** word -> WordNet synonyms (lower-case lookups, single-word lemmas), filled in advance. */
export class SynonymTable {
  private readonly table = new Map<string, string[]>();

  /** Build for every editable word of `captions` (one WordNet lookup per distinct word). */
  static async build(captions: Iterable<string>, maxPerWord = 20): Promise<SynonymTable> {
    const t = new SynonymTable();
    const swap = new WordNetSynonymSwap({ maxCandidates: maxPerWord });
    const words = new Set<string>();
    for (const c of captions) for (const w of wordsOf(splitWords(c))) if (editable(w)) words.add(w.toLowerCase());
    const list = [...words].sort();
    const found = await Promise.all(list.map((w) => swap.candidates([w], 0)));
    // sorted: wordpos may return senses in file-read completion order, which would make EDA depend on timing
    list.forEach((w, i) => t.table.set(w, [...new Set(found[i])].sort()));
    return t;
  }

  /** for tests and hand-built tables */
  static from(entries: Record<string, string[]>): SynonymTable {
    const t = new SynonymTable();
    for (const [k, v] of Object.entries(entries)) t.table.set(k.toLowerCase(), v.slice());
    return t;
  }

  synonyms(word: string): readonly string[] {
    return this.table.get(word.toLowerCase()) ?? [];
  }

  has(word: string): boolean {
    return this.table.has(word.toLowerCase());
  }

  get size(): number {
    return this.table.size;
  }
}
