/**
 * Square Attack (Andriushchenko et al., ECCV 2020), L-infinity, score-based black-box random search.
 *
 * Start from vertical stripes of +-eps; then, per iteration, pick a random square window of side
 * s = round(sqrt(p * S * S)) (p follows the paper's piecewise-halving schedule over the query budget) and set
 * the perturbation inside it to +-eps per channel; keep the candidate if the attacker's score improves. Every
 * evaluation is one query for that image; the still-active images of a batch are evaluated in one oracle call.
 * Each image stops on success or when its query budget is spent. Iterates stay inside the eps ball and [0,1].
 */
import type { Rng } from '../../util/rng.js';
import type { QueryBudget } from '../constraints/query-budget.js';

export interface ImageEvaluation {
  score: number[];
  success: boolean[];
}

export interface SquareSearchOptions {
  eps: number;
  /** initial fraction of pixels in the square (paper: 0.05 ImageNet, larger for small images); default 0.1 */
  pInit?: number;
  /** total queries per image the schedule is laid out over (normally the budget's max) */
  scheduleQueries: number;
  budget: QueryBudget;
  rngs: readonly Rng[];
  /** score and success of candidate images (row-major [S,S,3] each) for items `items`: one query each */
  evaluate: (images: readonly Float32Array[], items: readonly number[]) => Promise<ImageEvaluation>;
}

export interface SquareSearchOutput {
  adv: Float32Array;
  score: number[];
  success: boolean[];
}

/** the paper's p schedule (defined for 10,000 iterations, rescaled to the budget) */
export function squareP(pInit: number, iter: number, total: number): number {
  const it = Math.floor((iter / Math.max(total, 1)) * 10000);
  const cuts = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let p = pInit;
  for (const c of cuts) if (it > c) p /= 2;
  return p;
}

export async function squareSearchLinf(x0: Float32Array, n: number, size: number, opts: SquareSearchOptions): Promise<SquareSearchOutput> {
  const S = size;
  const per = S * S * 3;
  if (x0.length !== n * per) throw new Error(`squareSearchLinf: expected ${n * per} pixels, got ${x0.length}`);
  const eps = opts.eps;
  const pInit = opts.pInit ?? 0.1;
  const clip = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
  const clean = (i: number) => x0.subarray(i * per, (i + 1) * per);
  const cur: Float32Array[] = [];
  const score = new Array<number>(n).fill(-Infinity);
  const success = new Array<boolean>(n).fill(false);

  // init: vertical stripes (one sign per column and channel)
  for (let i = 0; i < n; i++) {
    const x = new Float32Array(per);
    const c0 = clean(i);
    const sign = Array.from({ length: S * 3 }, () => (opts.rngs[i].next() < 0.5 ? -eps : eps));
    for (let h = 0; h < S; h++) for (let w = 0; w < S; w++) for (let c = 0; c < 3; c++) {
      const k = (h * S + w) * 3 + c;
      x[k] = clip(c0[k] + sign[w * 3 + c]);
    }
    cur.push(x);
  }
  {
    const items = range(n).filter((i) => opts.budget.remaining(i) > 0);
    if (items.length > 0) {
      for (const i of items) opts.budget.spend(i, 1);
      const r = await opts.evaluate(items.map((i) => cur[i]), items);
      items.forEach((i, k) => {
        score[i] = r.score[k];
        success[i] = r.success[k];
      });
    }
  }

  for (;;) {
    const items = range(n).filter((i) => !success[i] && opts.budget.remaining(i) > 0);
    if (items.length === 0) break;
    const cands = items.map((i) => {
      const rng = opts.rngs[i];
      const x = cur[i];
      const c0 = clean(i);
      const p = squareP(pInit, opts.budget.used[i] - 1, opts.scheduleQueries);
      const s = Math.min(Math.max(Math.round(Math.sqrt(p * S * S)), 1), S);
      const y = x.slice();
      for (let attempt = 0; attempt < 10; attempt++) {
        const h0 = rng.int(S - s + 1);
        const w0 = rng.int(S - s + 1);
        const d = [0, 1, 2].map(() => (rng.next() < 0.5 ? -eps : eps));
        let changed = false;
        for (let h = h0; h < h0 + s; h++) for (let w = w0; w < w0 + s; w++) for (let c = 0; c < 3; c++) {
          const k = (h * S + w) * 3 + c;
          const v = clip(c0[k] + d[c]);
          if (Math.abs(v - x[k]) > 1e-7) changed = true;
          y[k] = v;
        }
        if (changed) break;
      }
      return y;
    });
    for (const i of items) opts.budget.spend(i, 1);
    const r = await opts.evaluate(cands, items);
    items.forEach((i, k) => {
      if (r.score[k] > score[i] || r.success[k]) {
        cur[i] = cands[k];
        score[i] = r.score[k];
        success[i] = r.success[k];
      }
    });
  }
  const adv = new Float32Array(n * per);
  cur.forEach((x, i) => adv.set(x, i * per));
  return { adv, score, success };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
