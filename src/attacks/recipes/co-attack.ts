/**
 * Co-Attack (Zhang et al., ACM MM 2022), collaborative multimodal attack: first the captions (1 WordNet
 * synonym, moving each caption's embedding away from its clean embedding), then image PGD that pushes the
 * image away from its clean embedding and, with weight 3, from its adversarial captions' embeddings.
 * Defaults: eps 2/255, 10 steps, step 0.5/255, 1 word.
 */
import { normBall, pixelRange } from '../constraints/pixel.js';
import { pixelStep } from '../transformations/pixel.js';
import { WordNetSynonymSwap } from '../transformations/wordnet.js';
import type { ObjectiveWeights } from '../goals/objective.js';
import type { Attack } from '../types.js';
import { imageOutput, judgeImages, runPgdStage, runTextStage } from '../pipeline.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolvePgd, resolveSeed, resolveWeights, resolveWords, wordConfig, wordConstraints, type PgdBudget, type WordBudget } from './common.js';
import { textWeights, type TextObjectiveChoice } from './text-objective.js';

export interface CoAttackOptions extends Partial<PgdBudget>, Partial<WordBudget> {
  /** image objective; Co-Attack: clean 1, adversarial caption 3 */
  imageObjective?: Partial<ObjectiveWeights>;
  textObjective?: TextObjectiveChoice;
  maxCandidates?: number;
  seed?: number;
}

export function coAttack(opts: CoAttackOptions = {}): Attack {
  const b = resolvePgd(opts);
  const w = resolveWords(opts);
  const seed = resolveSeed(opts.seed);
  const imageObjective = resolveWeights(opts.imageObjective, { clean: 1, paired: 3 });
  const textObjective = opts.textObjective ?? 'clean';
  const swap = new WordNetSynonymSwap({ maxCandidates: opts.maxCandidates });
  return defineAttack('coattack', 'white-box', { ...b, ...wordConfig(w), imageObjective, textObjective }, seed, async (ctx) => {
    const constraints = wordConstraints(w);
    const captions = await runTextStage(ctx, { transformation: swap, constraints, maxWordsChanged: w.maxWordsChanged, wir: w.wir, objective: textWeights(textObjective), seed, salt: SALT.textSearch });
    const stage = await runPgdStage(ctx, {
      ...b,
      objective: imageObjective,
      pairedCaptions: captions.texts, // away from the ADVERSARIAL captions
      constraints: [normBall(b.norm, b.eps), pixelRange(0, 1)],
      step: pixelStep(b.norm, b.stepSize),
      seed,
      salt: SALT.pgdStart,
    });
    return { images: imageOutput(ctx, stage, await judgeImages(ctx, stage.adv)), captions, goal: ctx.goalName('image') };
  });
}
