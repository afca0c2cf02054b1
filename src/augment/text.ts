/**
 * Text 1:N augmenters.
 * - EDA (Wei & Zou 2019): synonym replacement (WordNet), random insertion (a WordNet synonym of a word of the
 *   caption, at a random position), random swap of two words, random deletion. Each variant applies ONE
 *   operation n = max(1, round(alpha * words)) times; stop words and protected spatial words are never replaced
 *   or deleted. Synonyms come from a prebuilt SynonymTable (sync, deterministic).
 * - siblings: the image's other ground-truth captions, offered as extra positives in the same step.
 * - paraphrase: paraphrases of the ground-truth captions read from a provider cache (see providers.ts).
 */
import { splitWords, wordsOf } from '../attacks/util/words.js';
import type { Rng } from '../util/rng.js';
import type { Augmenter, Pair } from './types.js';
import { withCaptions } from './types.js';
import { editable, type SynonymTable } from './words.js';

export type EdaOp = 'sr' | 'ri' | 'rs' | 'rd';
export const EDA_OPS: readonly EdaOp[] = ['sr', 'ri', 'rs', 'rd'];

export interface EdaOptions {
  /** share of words changed per variant (EDA's alpha); n = max(1, round(alpha * words)) */
  alpha?: number;
  /** variants per pair */
  variants?: number;
  ops?: readonly EdaOp[];
}

/** number of edits EDA makes on a caption of `words` words */
export function edaEdits(words: number, alpha: number): number {
  return Math.max(1, Math.round(alpha * words));
}

/** One EDA variant of `caption` with operation `op`; returns the caption unchanged when the op is impossible. */
export function edaOnce(caption: string, op: EdaOp, n: number, syn: SynonymTable, rng: Rng): string {
  const view = splitWords(caption);
  let words = wordsOf(view);
  if (words.length === 0) return caption;
  const candidates = () => words.map((w, i) => i).filter((i) => editable(words[i]) && syn.synonyms(words[i]).length > 0);
  switch (op) {
    case 'sr': {
      const idx = rng.shuffle(candidates());
      const changed = new Set<number>();
      for (const i of idx) {
        if (changed.size >= n) break;
        words[i] = rng.pick(syn.synonyms(words[i]));
        changed.add(i);
      }
      break;
    }
    case 'ri': {
      for (let k = 0; k < n; k++) {
        const c = candidates();
        if (c.length === 0) break;
        const w = rng.pick(syn.synonyms(words[rng.pick(c)]));
        const at = rng.int(words.length + 1);
        words = [...words.slice(0, at), w.toLowerCase(), ...words.slice(at)];
      }
      return words.join(' ');
    }
    case 'rs': {
      if (words.length < 2) return caption;
      for (let k = 0; k < n; k++) {
        const i = rng.int(words.length);
        let j = rng.int(words.length - 1);
        if (j >= i) j++;
        [words[i], words[j]] = [words[j], words[i]];
      }
      break;
    }
    case 'rd': {
      const del = rng.shuffle(words.map((_, i) => i).filter((i) => editable(words[i]))).slice(0, n);
      if (del.length === 0 || del.length >= words.length) return caption;
      const drop = new Set(del);
      return words.filter((_, i) => !drop.has(i)).join(' ');
    }
  }
  // sr / rs keep the word count: write the words back into the original punctuation pieces
  const pieces = view.pieces.slice();
  view.wordAt.forEach((p, i) => (pieces[p] = words[i]));
  return pieces.join('');
}

export function edaAugmenter(syn: SynonymTable, opts: EdaOptions = {}): Augmenter {
  const alpha = opts.alpha ?? 0.1;
  const variants = opts.variants ?? 3;
  const ops = opts.ops ?? EDA_OPS;
  return {
    name: 'eda',
    kind: 'text',
    augment(pair: Pair, rng: Rng): Pair[] {
      const gt = pair.captions.filter((_, i) => pair.origins[i] === 'gt');
      if (gt.length === 0) return [];
      const out = new Set<string>();
      const have = new Set(pair.captions);
      for (let attempt = 0; out.size < variants && attempt < variants * 4; attempt++) {
        const c = rng.pick(gt);
        const op = rng.pick(ops);
        const v = edaOnce(c, op, edaEdits(wordsOf(splitWords(c)).length, alpha), syn, rng);
        if (v !== c && !have.has(v)) out.add(v);
      }
      return out.size ? [withCaptions(pair, [...out], 'eda')] : [];
    },
  };
}

/** the other ground-truth captions of the image as extra same-step positives ("accumulation of siblings") */
export function siblingsAugmenter(): Augmenter {
  return {
    name: 'siblings',
    kind: 'text',
    augment(pair: Pair): Pair[] {
      const gt = pair.captions.filter((_, i) => pair.origins[i] === 'gt');
      return gt.length > 1 ? [withCaptions(pair, gt.slice(), 'siblings')] : [];
    },
  };
}

/** paraphrases of the ground-truth captions, from a lookup (a provider cache) */
export function paraphraseAugmenter(lookup: (caption: string) => readonly string[] | undefined, variants = 3): Augmenter {
  return {
    name: 'paraphrase',
    kind: 'text',
    augment(pair: Pair, rng: Rng): Pair[] {
      const have = new Set(pair.captions);
      const all: string[] = [];
      pair.captions.forEach((c, i) => {
        if (pair.origins[i] !== 'gt') return;
        for (const p of lookup(c) ?? []) if (!have.has(p) && !all.includes(p)) all.push(p);
      });
      const pick = rng.shuffle(all).slice(0, variants);
      return pick.length ? [withCaptions(pair, pick, 'paraphrase')] : [];
    },
  };
}
