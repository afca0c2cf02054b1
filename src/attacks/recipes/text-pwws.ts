/**
 * PWWS-style word substitution (Ren et al. 2019; TextAttack GreedyWordSwapWIR + WordSwapWordNet): WordNet
 * synonyms, stop words skipped, words visited by deletion importance, the candidate that most raises the
 * objective kept; 1 word changed by default. Objective 'paired': lower the similarity to the paired image;
 * 'clean': move the caption's embedding away from its clean embedding; 'auto': paired when images are given.
 */
import { WordNetSynonymSwap, type WordNetSwapOptions } from '../transformations/wordnet.js';
import type { Attack } from '../types.js';
import { runTextStage } from '../pipeline.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolveSeed, resolveWords, wordConfig, wordConstraints, type WordBudget } from './common.js';
import { textWeights, type TextObjectiveChoice } from './text-objective.js';

export interface TextPwwsOptions extends Partial<WordBudget>, WordNetSwapOptions {
  objective?: TextObjectiveChoice;
  seed?: number;
}

export function textPwwsAttack(opts: TextPwwsOptions = {}): Attack {
  const w = resolveWords(opts);
  const seed = resolveSeed(opts.seed);
  const objective = opts.objective ?? 'auto';
  const transformation = new WordNetSynonymSwap({ pos: opts.pos, maxCandidates: opts.maxCandidates });
  return defineAttack('text', 'white-box', { ...wordConfig(w), objective, maxCandidates: opts.maxCandidates ?? 50, pos: opts.pos ?? 'all' }, seed, async (ctx) => {
    const captions = await runTextStage(ctx, {
      transformation,
      constraints: wordConstraints(w),
      maxWordsChanged: w.maxWordsChanged,
      wir: w.wir,
      objective: textWeights(objective),
      seed,
      salt: SALT.textSearch,
    });
    return { captions, goal: ctx.goalName('text') };
  });
}
