/**
 * The gradient probe of the sanity checks (checks.ts): the input gradient of the image tower on a few images must
 * be finite and non-zero, else white-box image attacks cannot move and robustness is an artefact.
 */
import { tf } from '../../engine/tf.js';
import { takeData } from '../../engine/read.js';
import type { DualEncoder } from '../../model/types.js';

export interface GradientProbe {
  n: number;
  finite: boolean;
  maxAbs: number;
  /** share of exactly-zero gradient entries */
  zeroFraction: number;
}

/**
 * Input gradient of sum_i cos(image_i, caption_i) on n images (no weight gradients). textEmb rows `captions[i]`
 * are the paired caption embeddings of image i.
 */
export async function gradientProbe(
  model: DualEncoder,
  pixels: Float32Array,
  n: number,
  size: number,
  textEmb: Float32Array,
  captions: readonly number[],
  dim: number,
): Promise<GradientProbe> {
  if (n === 0) return { n, finite: true, maxAbs: 0, zeroFraction: 1 };
  const t = new Float32Array(n * dim);
  captions.forEach((c, i) => t.set(textEmb.subarray(c * dim, (c + 1) * dim), i * dim));
  const g = await takeData(
    tf.tidy(() => {
      const x = tf.tensor4d(pixels, [n, size, size, 3]);
      const tt = tf.tensor2d(t, [n, dim]);
      const f = (xx: tf.Tensor): tf.Scalar => tf.sum(tf.mul(model.imageTower(xx as tf.Tensor4D), tt));
      return tf.grad(f)(x);
    }),
  );
  let finite = true;
  let maxAbs = 0;
  let zeros = 0;
  for (let i = 0; i < g.length; i++) {
    const v = g[i];
    if (!Number.isFinite(v)) finite = false;
    else if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
    if (v === 0) zeros++;
  }
  return { n, finite, maxAbs, zeroFraction: zeros / g.length };
}
