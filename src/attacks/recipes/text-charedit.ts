/**
 * DeepWordBug-style character edits (Gao et al. 2018): swap / delete / insert / substitute one character of
 * the most important words (deletion importance), stop words skipped, 1 word changed by default.
 */
import { CharEditTransformation, type CharEditOptions } from '../transformations/char-edit.js';
import type { Attack } from '../types.js';
import { runTextStage } from '../pipeline.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolveSeed, resolveWords, wordConfig, wordConstraints, type WordBudget } from './common.js';
import { textWeights, type TextObjectiveChoice } from './text-objective.js';

export interface TextCharEditOptions extends Partial<WordBudget>, CharEditOptions {
  objective?: TextObjectiveChoice;
  seed?: number;
}

export function textCharEditAttack(opts: TextCharEditOptions = {}): Attack {
  const w = resolveWords(opts);
  const seed = resolveSeed(opts.seed);
  const objective = opts.objective ?? 'auto';
  const transformation = new CharEditTransformation(opts);
  return defineAttack('charedit', 'white-box', { ...wordConfig(w), objective, ops: transformation.ops, perOp: opts.perOp ?? 2, minLength: opts.minLength ?? 3 }, seed, async (ctx) => {
    const captions = await runTextStage(ctx, {
      transformation,
      constraints: wordConstraints(w),
      maxWordsChanged: w.maxWordsChanged,
      wir: w.wir,
      objective: textWeights(objective),
      seed,
      salt: SALT.charEdit,
    });
    return { captions, goal: ctx.goalName('text') };
  });
}
