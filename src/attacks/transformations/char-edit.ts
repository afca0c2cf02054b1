/**
 * DeepWordBug-style character edits (Gao et al. 2018): swap two adjacent characters, delete one, insert one,
 * substitute one. For a word, `perOp` random edits of each enabled kind are drawn from the rng (positions and
 * letters), de-duplicated; the word itself is never a candidate. Every candidate is at edit distance 1 from the
 * word (Damerau: an adjacent swap counts as 1) and is non-empty. Inserted / substituted letters are lower-case
 * a-z, upper-case when the neighbouring original letter is upper-case.
 */
import type { Rng } from '../../util/rng.js';
import type { WordTransformation } from './word.js';

export type CharEditOp = 'swap' | 'delete' | 'insert' | 'substitute';

export interface CharEditOptions {
  ops?: readonly CharEditOp[];
  /** random edits drawn per op (default 2) */
  perOp?: number;
  /** words shorter than this are left alone (default 3) */
  minLength?: number;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

export class CharEditTransformation implements WordTransformation {
  readonly name = 'char-edit';
  readonly ops: readonly CharEditOp[];
  private readonly perOp: number;
  private readonly minLength: number;

  constructor(opts: CharEditOptions = {}) {
    this.ops = opts.ops ?? ['swap', 'delete', 'insert', 'substitute'];
    this.perOp = opts.perOp ?? 2;
    this.minLength = opts.minLength ?? 3;
  }

  async candidates(words: readonly string[], index: number, rng: Rng): Promise<string[]> {
    return this.edits(words[index], rng);
  }

  edits(word: string, rng: Rng): string[] {
    const chars = Array.from(word);
    const n = chars.length;
    if (n < this.minLength) return [];
    const out: string[] = [];
    const seen = new Set<string>([word]);
    const push = (c: string[]) => {
      const s = c.join('');
      if (s.length > 0 && !seen.has(s)) {
        seen.add(s);
        out.push(s);
      }
    };
    const letter = (like: string, not?: string) => {
      let l: string;
      do l = LETTERS[rng.int(26)];
      while (l === not?.toLowerCase());
      return like !== like.toLowerCase() ? l.toUpperCase() : l;
    };
    for (const op of this.ops) {
      for (let t = 0; t < this.perOp; t++) {
        const c = chars.slice();
        if (op === 'swap') {
          const i = rng.int(n - 1);
          if (c[i] === c[i + 1]) continue;
          [c[i], c[i + 1]] = [c[i + 1], c[i]];
        } else if (op === 'delete') {
          c.splice(rng.int(n), 1);
        } else if (op === 'insert') {
          const i = rng.int(n + 1);
          c.splice(i, 0, letter(chars[Math.min(i, n - 1)]));
        } else {
          const i = rng.int(n);
          c[i] = letter(chars[i], chars[i]);
        }
        push(c);
      }
    }
    return out;
  }
}

/** Damerau-Levenshtein (optimal string alignment) distance; used to validate edits */
export function editDistance(a: string, b: string): number {
  const A = Array.from(a);
  const B = Array.from(b);
  const d: number[][] = Array.from({ length: A.length + 1 }, (_, i) => Array.from({ length: B.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= A.length; i++) {
    for (let j = 1; j <= B.length; j++) {
      const cost = A[i - 1] === B[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && A[i - 1] === B[j - 2] && A[i - 2] === B[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[A.length][B.length];
}
