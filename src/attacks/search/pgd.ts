/**
 * Projected gradient ascent (Madry et al.) on a per-image objective, batched over many images.
 *
 * - Input-only gradients: tf.grad w.r.t. the pixel tensor only, inside engine/ops `withoutWeightGrads`, so the
 *   model's fast ops skip their weight-gradient matmuls (tfjs itself only back-propagates towards the input).
 * - Random start inside the ball (L-inf: uniform in [-eps,eps]^d; L2: a uniform direction with radius
 *   eps*U(0,1)), drawn from each image's own rng, then projected.
 * - Best iterate per image (keepBest, default): the objective of every iterate x_0..x_T is measured (it is the
 *   forward pass of the gradient step anyway, plus one final forward) and the best one is returned. With the
 *   same seed the first t iterates of a T-step run equal a t-step run, so more steps are never weaker.
 * - No host read per step (webgpu in Node has only async reads, and a read per step stalls a real GPU): the best
 *   iterate is selected on the device; the objective is read once at the end with `await data()`.
 * - Tensor hygiene: every step runs in tf.tidy; tf.memory().numTensors is unchanged after the call except for
 *   the returned tensor.
 */
import { tf } from '../../engine/tf.js';
import { withoutWeightGrads } from '../../engine/ops.js';
import { takeData } from '../../engine/read.js';
import type { Rng } from '../../util/rng.js';
import type { Norm } from '../types.js';
import { projectAll, type PixelConstraint } from '../constraints/pixel.js';
import type { PixelStep } from '../transformations/pixel.js';

export interface PgdSearchOptions {
  steps: number;
  randomStart: boolean;
  /** the ball used for the random start (the projection itself is done by `constraints`) */
  norm: Norm;
  eps: number;
  step: PixelStep;
  constraints: readonly PixelConstraint[];
  keepBest?: boolean;
  /** `loss` reads x's values on the host (InputTransform.readsHostPixels): x is downloaded before each call */
  hostReadsInput?: boolean;
}

export interface PgdSearchOutput {
  /** adversarial batch (caller disposes) */
  adv: tf.Tensor4D;
  /** objective of the returned iterate, per image */
  objective: Float32Array;
  /** model forward passes per image (steps + 1) */
  forwards: number;
}

/**
 * x0: clean batch [m,S,S,3] (not disposed); loss: x -> per-image objective [m] (to maximise), differentiable
 * w.r.t. x; rngs: one generator per image.
 */
export async function pgdSearch(
  x0: tf.Tensor4D,
  loss: (x: tf.Tensor4D) => tf.Tensor1D,
  opts: PgdSearchOptions,
  rngs: readonly Rng[],
): Promise<PgdSearchOutput> {
  const m = x0.shape[0];
  if (rngs.length !== m) throw new Error(`pgdSearch: ${rngs.length} rngs for ${m} images`);
  if (!Number.isInteger(opts.steps) || opts.steps < 0) throw new Error(`pgdSearch: steps must be an integer >= 0, got ${opts.steps}`);
  const keepBest = opts.keepBest ?? true;

  let x: tf.Tensor4D = tf.tidy(() => {
    if (!opts.randomStart || opts.eps === 0) return projectAll(opts.constraints, x0.clone(), x0);
    const per = x0.size / m;
    const d = new Float32Array(x0.size);
    for (let i = 0; i < m; i++) {
      const rng = rngs[i];
      if (opts.norm === 'linf') {
        for (let k = i * per; k < (i + 1) * per; k++) d[k] = rng.uniform(-opts.eps, opts.eps);
      } else {
        let ss = 0;
        for (let k = i * per; k < (i + 1) * per; k++) {
          d[k] = rng.normal();
          ss += d[k] * d[k];
        }
        const r = (opts.eps * rng.next()) / Math.max(Math.sqrt(ss), 1e-12);
        for (let k = i * per; k < (i + 1) * per; k++) d[k] *= r;
      }
    }
    return projectAll(opts.constraints, tf.add(x0, tf.tensor(d, x0.shape)) as tf.Tensor4D, x0);
  });

  let kept: tf.Tensor1D | null = null;
  const gradFn = tf.grad((xx: tf.Tensor) => {
    const l = loss(xx as tf.Tensor4D);
    kept = tf.keep(l);
    return tf.sum(l) as tf.Scalar;
  });

  // the best iterate and its objective stay on the device (a where per step instead of a GPU->CPU read per step);
  // the objective is read back once, at the end
  let best: tf.Tensor4D | null = null;
  let bestVal: tf.Tensor1D | null = null;
  let lastVal: tf.Tensor1D | null = null;
  try {
    for (let t = 0; t <= opts.steps; t++) {
      // the objective reads x on the host (JPEG EOT): download it now, the only read webgpu allows in Node
      if (opts.hostReadsInput) await x.data();
      let g: tf.Tensor4D | null = null;
      let vals: tf.Tensor1D;
      if (t < opts.steps) {
        g = withoutWeightGrads(() => gradFn(x)) as tf.Tensor4D;
        const k = kept as tf.Tensor1D | null;
        if (!k) throw new Error('pgdSearch: objective value was not captured');
        vals = k;
        kept = null;
      } else {
        vals = tf.tidy(() => loss(x));
      }
      if (!keepBest) {
        lastVal?.dispose();
        lastVal = vals;
      } else if (best === null || bestVal === null) {
        best = x.clone();
        bestVal = vals;
      } else {
        // strictly better only: a tie or a NaN keeps the earlier iterate
        const prev: tf.Tensor4D = best;
        const prevVal: tf.Tensor1D = bestVal;
        const better = tf.tidy(() => tf.greater(vals, prevVal));
        best = tf.tidy(() => tf.where(tf.reshape(better, [m, 1, 1, 1]), x, prev) as tf.Tensor4D);
        bestVal = tf.tidy(() => tf.where(better, vals, prevVal) as tf.Tensor1D);
        better.dispose();
        prev.dispose();
        prevVal.dispose();
        vals.dispose();
      }
      if (t === opts.steps) {
        g?.dispose();
        break;
      }
      const grad = g!;
      const next = tf.tidy(() => projectAll(opts.constraints, opts.step.apply(x, grad), x0));
      grad.dispose();
      x.dispose();
      x = next;
    }
  } catch (e) {
    x.dispose();
    for (const t of [best, bestVal, lastVal, kept as tf.Tensor1D | null]) t?.dispose();
    throw e;
  }
  if (keepBest && best) {
    x.dispose();
    return { adv: best, objective: await takeData(bestVal!), forwards: opts.steps + 1 };
  }
  return { adv: x, objective: await takeData(lastVal!), forwards: opts.steps + 1 };
}
