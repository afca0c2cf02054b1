/**
 * Query-only text attack: greedy word substitution by deletion importance, scored by the oracle's returned
 * ranks/scores of the gold item (WordNet synonyms, or DeepWordBug character edits), stop words skipped,
 * 1 word by default, a per-caption query budget.
 */
import { CharEditTransformation } from '../transformations/char-edit.js';
import { WordNetSynonymSwap } from '../transformations/wordnet.js';
import type { Attack } from '../types.js';
import { runBlackBoxTextStage } from '../pipeline.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolveSeed, resolveWords, wordConfig, wordConstraints, type WordBudget } from './common.js';

export interface BlackBoxTextOptions extends Partial<WordBudget> {
  transformation?: 'wordnet' | 'charedit';
  /** queries per caption (default 200) */
  maxQueries?: number;
  maxCandidates?: number;
  seed?: number;
}

export function blackBoxTextAttack(opts: BlackBoxTextOptions = {}): Attack {
  const w = resolveWords(opts);
  const seed = resolveSeed(opts.seed);
  const cfg = { ...wordConfig(w), transformation: opts.transformation ?? 'wordnet', maxQueries: opts.maxQueries ?? 200 };
  if (!(Number.isInteger(cfg.maxQueries) && cfg.maxQueries >= 1)) throw new Error(`attack config: maxQueries must be a positive integer`);
  const transformation = cfg.transformation === 'charedit' ? new CharEditTransformation() : new WordNetSynonymSwap({ maxCandidates: opts.maxCandidates });
  return defineAttack('blackbox-text', 'black-box', cfg, seed, async (ctx) => ({
    captions: await runBlackBoxTextStage(ctx, {
      transformation,
      constraints: wordConstraints(w),
      maxWordsChanged: w.maxWordsChanged,
      wir: w.wir,
      maxQueries: cfg.maxQueries,
      seed,
      salt: SALT.textSearch,
    }),
    goal: ctx.goalName('text'),
  }));
}
