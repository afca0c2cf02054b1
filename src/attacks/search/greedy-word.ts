/**
 * Greedy search by word importance (PWWS / TextAttack GreedyWordSwapWIR), batched over many captions, generic
 * over the scorer (white-box: embedding objective; black-box: oracle scores).
 *
 * 1. Score the original captions (1 query each).
 * 2. Word importance: each modifiable word is deleted (wir 'delete') or replaced by a mask token ('mask'); the
 *    importance of a word is how much that variant raises the attacker's score (e.g. lowers similarity to the
 *    paired image). All variants of all captions are scored in one scorer call. 'random' and 'none' (left to
 *    right) orders cost no queries.
 * 3. Words are visited in order of importance. At each rank, the candidates of every still-active caption are
 *    collected and scored in ONE scorer call (so a white-box scorer embeds them in one textTower call); each
 *    caption takes its best candidate if it raises its score. A caption stops when it succeeds, reaches the
 *    words-changed budget, runs out of query budget or of words.
 */
import type { Rng } from '../../util/rng.js';
import { allows, canModify, type TextConstraint, type TextEditState } from '../constraints/text.js';
import type { QueryBudget } from '../constraints/query-budget.js';
import type { WordTransformation } from '../transformations/word.js';
import { splitWords, wordsOf, replaceWord } from '../util/words.js';

export interface TextScore {
  score: ArrayLike<number>;
  /** success per text when the scorer knows it for free (black-box oracles); else `succeeded` is called */
  success?: readonly boolean[];
}

export interface TextScorer {
  /** attacker score of each text (higher = stronger); texts[i] is a candidate for query items[i] */
  score(texts: readonly string[], items: readonly number[]): Promise<TextScore>;
  /** goal check for accepted texts (needed when `score` does not report success) */
  succeeded?(texts: readonly string[], items: readonly number[]): Promise<boolean[]>;
}

export type WordImportance = 'delete' | 'mask' | 'random' | 'none';

export interface GreedyWordSearchOptions {
  transformation: WordTransformation;
  constraints: readonly TextConstraint[];
  scorer: TextScorer;
  /** words changed per caption (stops the caption when reached) */
  maxWordsChanged: number;
  wir?: WordImportance;
  maskToken?: string;
  budget: QueryBudget;
  /** one generator per caption */
  rngs: readonly Rng[];
  /** attack only these captions (others are returned unchanged, with no queries) */
  active?: readonly boolean[];
}

export interface GreedyWordSearchOutput {
  texts: string[];
  success: boolean[];
  score: number[];
  wordsChanged: number[];
}

interface ItemState extends TextEditState {
  modified: Set<number>;
  pieces: string[];
  wordAt: number[];
  words: string[];
  order: number[];
  score: number;
  success: boolean;
  done: boolean;
}

export async function greedyWordSearch(captions: readonly string[], opts: GreedyWordSearchOptions): Promise<GreedyWordSearchOutput> {
  const n = captions.length;
  const wir = opts.wir ?? 'delete';
  const items: ItemState[] = captions.map((c) => {
    const v = splitWords(c);
    const words = wordsOf(v);
    return { pieces: v.pieces, wordAt: v.wordAt, words, original: words.slice(), current: words, modified: new Set<number>(), order: [], score: -Infinity, success: false, done: false };
  });
  const textOf = (s: ItemState) => s.pieces.join('');
  const isActive = (i: number) => (opts.active ? opts.active[i] : true) && opts.budget.remaining(i) > 0;

  // 1. original scores
  {
    const idx = items.map((_, i) => i).filter(isActive);
    const on = new Set(idx);
    for (let i = 0; i < n; i++) if (!on.has(i)) items[i].done = true;
    const r = await scoreTexts(opts, idx.map((i) => captions[i]), idx);
    idx.forEach((i, k) => {
      items[i].score = r.score[k];
      items[i].success = r.success[k];
      if (r.success[k]) items[i].done = true;
    });
  }

  // 2. importance order
  const texts: string[] = [];
  const owners: number[] = [];
  const positions: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = items[i];
    if (s.done) continue;
    const cand = s.words.map((_, w) => w).filter((w) => canModify(opts.constraints, s, w));
    if (cand.length === 0) {
      s.done = true;
      continue;
    }
    if (wir === 'random') s.order = opts.rngs[i].shuffle(cand.slice());
    else if (wir === 'none' || cand.length === 1 || opts.budget.remaining(i) <= cand.length) s.order = cand;
    else {
      s.order = cand;
      const view = { pieces: s.pieces, wordAt: s.wordAt };
      for (const w of cand) {
        texts.push(replaceWord(view, w, wir === 'mask' ? (opts.maskToken ?? 'unk') : ''));
        owners.push(i);
        positions.push(w);
      }
    }
  }
  if (texts.length > 0) {
    const r = await scoreTexts(opts, texts, owners, false);
    const imp = new Map<number, Map<number, number>>();
    owners.forEach((i, k) => {
      if (!imp.has(i)) imp.set(i, new Map());
      imp.get(i)!.set(positions[k], r.score[k]);
    });
    for (const [i, m] of imp) items[i].order = items[i].order.slice().sort((a, b) => m.get(b)! - m.get(a)! || a - b);
  }

  // 3. greedy swaps, one rank at a time, all captions in one scoring call
  for (let rank = 0; ; rank++) {
    const texts3: string[] = [];
    const owners3: number[] = [];
    const meta: { word: number; cand: string }[] = [];
    let anyLeft = false;
    const pending: { i: number; w: number; cands: Promise<string[]> }[] = [];
    for (let i = 0; i < n; i++) {
      const s = items[i];
      if (s.done) continue;
      if (rank >= s.order.length || s.modified.size >= opts.maxWordsChanged || opts.budget.remaining(i) === 0) {
        s.done = true;
        continue;
      }
      anyLeft = true;
      const w = s.order[rank];
      if (!canModify(opts.constraints, s, w)) continue;
      // candidate generation runs concurrently (WordNet reads), in item order for each item's rng
      pending.push({ i, w, cands: opts.transformation.candidates(s.words, w, opts.rngs[i]) });
    }
    const resolved = await Promise.all(pending.map((p) => p.cands));
    for (let p = 0; p < pending.length; p++) {
      const { i, w } = pending[p];
      const s = items[i];
      let cands = resolved[p].filter((c) => c !== s.words[w] && !/\s/.test(c) && allows(opts.constraints, s, w, c));
      cands = cands.slice(0, opts.budget.remaining(i));
      const view = { pieces: s.pieces, wordAt: s.wordAt };
      for (const c of cands) {
        texts3.push(replaceWord(view, w, c));
        owners3.push(i);
        meta.push({ word: w, cand: c });
      }
    }
    if (!anyLeft) break;
    if (texts3.length === 0) continue;
    const r = await scoreTexts(opts, texts3, owners3, false);
    // best candidate per caption
    const best = new Map<number, number>();
    owners3.forEach((i, k) => {
      const b = best.get(i);
      if (b === undefined || r.score[k] > r.score[b]) best.set(i, k);
    });
    const accepted: number[] = [];
    for (const [i, k] of best) {
      const s = items[i];
      if (!(r.score[k] > s.score)) continue;
      const { word, cand } = meta[k];
      s.pieces[s.wordAt[word]] = cand;
      s.words[word] = cand;
      s.modified.add(word);
      s.score = r.score[k];
      accepted.push(k);
    }
    if (accepted.length > 0) {
      let succ: boolean[];
      if (r.successKnown) succ = accepted.map((k) => r.success[k]);
      else if (opts.scorer.succeeded) succ = await opts.scorer.succeeded(accepted.map((k) => texts3[k]), accepted.map((k) => owners3[k]));
      else succ = accepted.map(() => false);
      accepted.forEach((k, j) => {
        const s = items[owners3[k]];
        s.success = succ[j];
        if (succ[j]) s.done = true;
      });
    }
  }

  return {
    texts: items.map(textOf),
    success: items.map((s) => s.success),
    score: items.map((s) => s.score),
    wordsChanged: items.map((s) => s.words.reduce((acc, w, k) => acc + (w !== s.original[k] ? 1 : 0), 0)),
  };
}

async function scoreTexts(
  opts: GreedyWordSearchOptions,
  texts: readonly string[],
  items: readonly number[],
  needSuccess = true,
): Promise<{ score: number[]; success: boolean[]; successKnown: boolean }> {
  if (texts.length === 0) return { score: [], success: [], successKnown: true };
  for (const i of items) opts.budget.spend(i, 1);
  const r = await opts.scorer.score(texts, items);
  const score = Array.from(r.score, Number);
  if (r.success) return { score, success: r.success.slice(), successKnown: true };
  if (needSuccess && opts.scorer.succeeded) return { score, success: await opts.scorer.succeeded(texts, items), successKnown: true };
  return { score, success: texts.map(() => false), successKnown: false };
}
