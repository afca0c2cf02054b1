/**
 * SGA, set-level guidance attack (Lu et al., ICCV 2023): (1) attack every caption of an image, guided by the
 * clean image; (2) image PGD on scale-invariant copies (0.5, 0.75, 1.25, 1.5 with Gaussian noise, through
 * tf.image.resizeBilinear and back) against ALL of its adversarial captions at once; (3) re-attack the original
 * captions guided by the adversarial image. Defaults: eps 2/255, 10 steps, step 0.5/255, 1 word.
 */
import { normBall, pixelRange } from '../constraints/pixel.js';
import { pixelStep, rescaledCopies } from '../transformations/pixel.js';
import { WordNetSynonymSwap } from '../transformations/wordnet.js';
import type { Attack } from '../types.js';
import { imageOutput, judgeImages, runPgdStage, runTextStage } from '../pipeline.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolvePgd, resolveSeed, resolveWords, wordConfig, wordConstraints, type PgdBudget, type WordBudget } from './common.js';

export interface SgaOptions extends Partial<PgdBudget>, Partial<WordBudget> {
  scales?: number[];
  /** std of the noise added before each rescale, pixel units (SGA code: 0.05) */
  noiseStd?: number;
  maxCandidates?: number;
  seed?: number;
}

export function sgaAttack(opts: SgaOptions = {}): Attack {
  const b = resolvePgd(opts);
  const w = resolveWords(opts);
  const seed = resolveSeed(opts.seed);
  const scales = opts.scales ?? [0.5, 0.75, 1.25, 1.5];
  const noiseStd = opts.noiseStd ?? 0.05;
  const swap = new WordNetSynonymSwap({ maxCandidates: opts.maxCandidates });
  return defineAttack('sga', 'white-box', { ...b, ...wordConfig(w), scales, noiseStd }, seed, async (ctx) => {
    const constraints = wordConstraints(w);
    const text = { transformation: swap, constraints, maxWordsChanged: w.maxWordsChanged, wir: w.wir, objective: { clean: 0, paired: 1 }, seed };
    const first = await runTextStage(ctx, { ...text, salt: SALT.textSearch });
    const stage = await runPgdStage(ctx, {
      ...b,
      objective: { clean: 0, paired: 1 },
      pairedCaptions: first.texts, // the set of adversarial captions of each image
      inputTransform: rescaledCopies({ scales, noiseStd }),
      constraints: [normBall(b.norm, b.eps), pixelRange(0, 1)],
      step: pixelStep(b.norm, b.stepSize),
      seed,
      salt: SALT.pgdStart,
    });
    const second = await runTextStage(ctx, { ...text, guideImages: stage.adv, salt: SALT.textSearch2 });
    const captions = { ...second, queries: second.queries.map((q, i) => q + first.queries[i]) };
    return { images: imageOutput(ctx, stage, await judgeImages(ctx, stage.adv)), captions, goal: ctx.goalName('image') };
  });
}
