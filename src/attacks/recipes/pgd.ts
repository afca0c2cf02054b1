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
import { jpegEot } from '../transformations/jpeg.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolvePgd, resolveSeed, resolveWeights, type PgdBudget } from './common.js';

export interface PgdOptions extends Partial<PgdBudget> {
  objective?: Partial<ObjectiveWeights>;
  seed?: number;
  /**
   * expectation over JPEG encoding at this quality (transformations/jpeg.ts): the objective is measured on the
   * images' JPEG round trips, so the perturbation survives a server's JPEG decode; absent = on the raw pixels
   */
  eotJpegQuality?: number;
}

export function pgdAttack(opts: PgdOptions = {}): Attack {
  const b = resolvePgd(opts);
  const objective = resolveWeights(opts.objective, { clean: 1, paired: 1 });
  const seed = resolveSeed(opts.seed);
  const eot = opts.eotJpegQuality !== undefined ? jpegEot(opts.eotJpegQuality) : undefined;
  return defineAttack('pgd', 'white-box', { ...b, objective, ...(eot ? { eot: eot.name } : {}) }, seed, async (ctx) => {
    const stage = await runPgdStage(ctx, {
      ...b,
      objective,
      ...(eot ? { inputTransform: eot } : {}),
      pairedCaptions: ctx.captions,
      constraints: [normBall(b.norm, b.eps), pixelRange(0, 1)],
      step: pixelStep(b.norm, b.stepSize),
      seed,
      salt: SALT.pgdStart,
    });
    return { images: imageOutput(ctx, stage, await judgeImages(ctx, stage.adv)), goal: ctx.goalName('image') };
  });
}
