/**
 * Query-only image attack: Square Attack (L-inf) on the scores an index returns. Success = every gold id
 * left the top-k of the oracle's ranked ids; each image stops at success or at its query budget.
 */
import type { Attack } from '../types.js';
import { runSquareStage } from '../pipeline.js';
import { SALT } from '../util/seed.js';
import { defineAttack, resolveSeed } from './common.js';

export interface BlackBoxImageOptions {
  eps?: number;
  /** queries per image (default 500) */
  maxQueries?: number;
  /** initial square fraction (default 0.1) */
  pInit?: number;
  seed?: number;
}

export function blackBoxImageAttack(opts: BlackBoxImageOptions = {}): Attack {
  const cfg = { eps: opts.eps ?? 2 / 255, maxQueries: opts.maxQueries ?? 500, pInit: opts.pInit ?? 0.1, norm: 'linf' as const };
  if (!(cfg.eps >= 0 && cfg.eps <= 1)) throw new Error(`attack config: eps is in pixel units [0,1], got ${cfg.eps}`);
  if (!(Number.isInteger(cfg.maxQueries) && cfg.maxQueries >= 1)) throw new Error(`attack config: maxQueries must be a positive integer`);
  const seed = resolveSeed(opts.seed);
  return defineAttack('blackbox-image', 'black-box', cfg, seed, async (ctx) => ({
    images: await runSquareStage(ctx, { ...cfg, seed, salt: SALT.square }),
    goal: ctx.goalName('image'),
  }));
}
