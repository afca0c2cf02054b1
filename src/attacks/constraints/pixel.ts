/**
 * Pixel constraints: projections applied after every step of an image search, in order. An L-inf or L2 ball of
 * radius eps around the clean image, then the valid pixel range [0,1]. Clipping to the box after the ball never
 * increases |x - x0| componentwise (x0 is inside the box), so the composition stays inside both sets.
 */
import { tf } from '../../engine/tf.js';
import type { Norm } from '../types.js';

export interface PixelConstraint {
  readonly name: string;
  /** project x (the current adversarial batch) given the clean batch x0; call inside tf.tidy */
  project(x: tf.Tensor4D, x0: tf.Tensor4D): tf.Tensor4D;
}

export function linfBall(eps: number): PixelConstraint {
  checkEps(eps);
  return {
    name: `linf<=${eps}`,
    project: (x, x0) => tf.minimum(tf.maximum(x, tf.sub(x0, eps)), tf.add(x0, eps)) as tf.Tensor4D,
  };
}

/** per-item L2 norm of a [n, ...] tensor as [n,1,1,1] */
export function perItemL2(d: tf.Tensor4D): tf.Tensor4D {
  return tf.sqrt(tf.sum(tf.square(d), [1, 2, 3], true)) as tf.Tensor4D;
}

export function l2Ball(eps: number): PixelConstraint {
  checkEps(eps);
  return {
    name: `l2<=${eps}`,
    project: (x, x0) => {
      const d = tf.sub(x, x0) as tf.Tensor4D;
      const factor = tf.minimum(1, tf.div(eps, tf.maximum(perItemL2(d), 1e-12)));
      return tf.add(x0, tf.mul(d, factor)) as tf.Tensor4D;
    },
  };
}

export function pixelRange(lo = 0, hi = 1): PixelConstraint {
  return { name: `pixels in [${lo},${hi}]`, project: (x) => tf.clipByValue(x, lo, hi) };
}

export function normBall(norm: Norm, eps: number): PixelConstraint {
  return norm === 'linf' ? linfBall(eps) : l2Ball(eps);
}

/** apply constraints in order */
export function projectAll(constraints: readonly PixelConstraint[], x: tf.Tensor4D, x0: tf.Tensor4D): tf.Tensor4D {
  let y = x;
  for (const c of constraints) y = c.project(y, x0);
  return y;
}

function checkEps(eps: number): void {
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new Error(`eps must be a finite number >= 0, got ${eps}`);
}
