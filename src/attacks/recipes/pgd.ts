/**
 * Image PGD (Madry et al.) on the embedding objective: push each image away from its clean embedding and from
 * its paired captions' embeddings (weights `objective`; the paired term applies when the batch pairs captions
 * with images). L-inf or L2, random start, pixels in [0,1].
 */
import { normBall, pixelRange } from '../constraints/pixel.js';
import { pixelStep } from '../transformations/pixel.js';
import type { ObjectiveWeights } from '../goals/objective.js';
import type { Attack } from '../types.js';
import { imageOutput, judgeImages, runPgdStage } from '../pipeline.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolvePgd, resolveSeed, resolveWeights, type PgdBudget } from './common.js';

export interface PgdOptions extends Partial<PgdBudget> {
  objective?: Partial<ObjectiveWeights>;
  seed?: number;
}

export function pgdAttack(opts: PgdOptions = {}): Attack {
  const b = resolvePgd(opts);
  const objective = resolveWeights(opts.objective, { clean: 1, paired: 1 });
  const seed = resolveSeed(opts.seed);
  return defineAttack('pgd', 'white-box', { ...b, objective }, seed, async (ctx) => {
    const stage = runPgdStage(ctx, {
      ...b,
      objective,
      pairedCaptions: ctx.captions,
      constraints: [normBall(b.norm, b.eps), pixelRange(0, 1)],
      step: pixelStep(b.norm, b.stepSize),
      seed,
      salt: SALT.pgdStart,
    });
    return { images: imageOutput(ctx, stage, judgeImages(ctx, stage.adv)), goal: ctx.goalName('image') };
  });
}
