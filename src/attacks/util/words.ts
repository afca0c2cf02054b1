/**
 * Caption <-> words. A caption is split into alternating word and non-word pieces so that joining the pieces
 * restores it exactly; transformations address words by their index among the word pieces only.
 */
const WORD_RE = /[\p{L}\p{M}]+(?:['’-][\p{L}\p{M}]+)*/gu;

export interface WordView {
  /** all pieces in order; pieces.join('') === the caption */
  pieces: string[];
  /** index into `pieces` of the i-th word */
  wordAt: number[];
}

export function splitWords(text: string): WordView {
  const pieces: string[] = [];
  const wordAt: number[] = [];
  let last = 0;
  for (const m of text.matchAll(WORD_RE)) {
    const at = m.index ?? 0;
    if (at > last) pieces.push(text.slice(last, at));
    wordAt.push(pieces.length);
    pieces.push(m[0]);
    last = at + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return { pieces, wordAt };
}

export function wordsOf(view: WordView): string[] {
  return view.wordAt.map((p) => view.pieces[p]);
}

/** The caption with word i replaced (an empty replacement deletes the word and one adjacent space). */
export function replaceWord(view: WordView, i: number, replacement: string): string {
  const pieces = view.pieces.slice();
  const p = view.wordAt[i];
  pieces[p] = replacement;
  if (replacement === '') {
    // drop one separating space so "a red circle" -> "a circle", not "a  circle"
    if (p + 1 < pieces.length && /^\s+$/.test(pieces[p + 1] ?? '')) pieces[p + 1] = pieces[p + 1].slice(1);
    else if (p > 0 && /\s$/.test(pieces[p - 1])) pieces[p - 1] = pieces[p - 1].slice(0, -1);
  }
  return pieces.join('');
}

/** Apply the case pattern of `like` to `word` (all caps, Capitalised, or as is). */
export function matchCase(word: string, like: string): string {
  if (like.length > 1 && like === like.toUpperCase() && like !== like.toLowerCase()) return word.toUpperCase();
  const first = like.charAt(0);
  if (first !== first.toLowerCase() && first === first.toUpperCase()) return word.charAt(0).toUpperCase() + word.slice(1);
  return word;
}
