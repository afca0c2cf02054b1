/**
 * Pixel transformations for image searches.
 * - sign step (L-inf steepest ascent): x + alpha * sign(g)
 * - L2 step: x + alpha * g / ||g||_2 (per image)
 * - rescaled copies (SGA): each image resized to scale*S with tf.image.resizeBilinear (after small Gaussian
 *   noise), clipped to [0,1], and resized back to S; differentiable, so the gradient flows through the resizes.
 */
import { tf } from '../../engine/tf.js';
import type { Rng } from '../../util/rng.js';
import type { Norm } from '../types.js';
import { perItemL2 } from '../constraints/pixel.js';

export interface PixelStep {
  readonly name: string;
  /** one ascent step on x given the gradient of the objective; call inside tf.tidy */
  apply(x: tf.Tensor4D, grad: tf.Tensor4D): tf.Tensor4D;
}

export function signStep(alpha: number): PixelStep {
  return { name: `sign-step(${alpha})`, apply: (x, g) => tf.add(x, tf.mul(tf.sign(g), alpha)) as tf.Tensor4D };
}

export function l2Step(alpha: number): PixelStep {
  return {
    name: `l2-step(${alpha})`,
    apply: (x, g) => tf.add(x, tf.mul(tf.div(g, tf.maximum(perItemL2(g), 1e-12)), alpha)) as tf.Tensor4D,
  };
}

export function pixelStep(norm: Norm, alpha: number): PixelStep {
  return norm === 'linf' ? signStep(alpha) : l2Step(alpha);
}

/** An input transformation applied inside the differentiable objective (x [m,S,S,3] -> [r*m,S,S,3]). */
export interface InputTransform {
  readonly name: string;
  /** number of replicas r produced per image */
  readonly replicas: number;
  /** rngs[i] is image i's generator (per item, so results do not depend on chunking); call inside tf.tidy */
  apply(x: tf.Tensor4D, rngs: readonly Rng[]): tf.Tensor4D;
  /**
   * apply reads x's values on the host (a non-differentiable codec such as JPEG): the search downloads x with
   * `await data()` before each call, so the synchronous read inside apply hits that copy (webgpu in Node has no
   * synchronous GPU read)
   */
  readonly readsHostPixels?: boolean;
}

export interface RescaleOptions {
  scales: readonly number[];
  /** std of the Gaussian noise added before each rescale, pixel units (SGA: 0.05) */
  noiseStd: number;
  /** keep the unscaled image as replica 0 (SGA does) */
  includeOriginal?: boolean;
}

/** SGA's scale-invariant copies: [x, resize(x+n1 -> s1*S -> S), ...] version-major */
export function rescaledCopies(opts: RescaleOptions): InputTransform {
  const includeOriginal = opts.includeOriginal ?? true;
  return {
    name: `rescale(${opts.scales.join(',')};noise=${opts.noiseStd})`,
    replicas: opts.scales.length + (includeOriginal ? 1 : 0),
    apply: (x, rngs) => {
      const [m, H, W, C] = x.shape;
      const out: tf.Tensor4D[] = includeOriginal ? [x] : [];
      for (const s of opts.scales) {
        let y: tf.Tensor4D = x;
        if (opts.noiseStd > 0) {
          const noise = new Float32Array(m * H * W * C);
          const per = H * W * C;
          for (let i = 0; i < m; i++) {
            const rng = rngs[i];
            for (let k = i * per; k < (i + 1) * per; k++) noise[k] = rng.normal() * opts.noiseStd;
          }
          y = tf.add(y, tf.tensor4d(noise, [m, H, W, C])) as tf.Tensor4D;
        }
        const h = Math.max(1, Math.round(H * s));
        const w = Math.max(1, Math.round(W * s));
        y = tf.clipByValue(tf.image.resizeBilinear(y, [h, w]), 0, 1);
        out.push(tf.image.resizeBilinear(y, [H, W]));
      }
      return out.length === 1 ? out[0] : tf.concat(out, 0);
    },
  };
}
