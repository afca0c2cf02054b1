/**
 * The defenses' outer losses and the objectives their inner loops maximise.
 *
 * - TeCoA (Mao et al. 2023): contrastive loss between PGD images and CLEAN captions; the inner PGD maximises
 *   the same loss (the caption embeddings are constants there). Image tower only.
 * - FARE (Schlarmann et al. 2024): || f(x_adv) - f_ref(x) ||^2, f_ref a frozen copy of the initial encoder;
 *   the inner PGD maximises it. Image tower only. Choice: we use the L2-NORMALISED embeddings (the paper uses the
 *   unnormalised ones): our model exposes normalised outputs only, retrieval ranks by cosine, and on the unit
 *   sphere ||a - b||^2 = 2 - 2 cos(a, b), so the loss is exactly "keep the cosine geometry of the reference".
 * - MAT (the method of PAPER.md): captions perturbed first, then PGD images against the ADVERSARIAL captions,
 *   then the contrastive loss on the adversarial pairs; both towers train.
 * All contrastive terms are the multi-positive InfoNCE of clip.ts (every caption of an image is a positive).
 */
import { tf } from '../../src/engine/tf.js';
import { multiPositiveInfoNce } from './clip.js';

/** contrastive loss of (images, fixed caption embeddings): TeCoA's loss and the TeCoA/MAT inner objective */
export function contrastiveAgainst(imageEmb: tf.Tensor2D, textEmb: tf.Tensor2D, owner: Int32Array, logitScale: tf.Scalar): tf.Scalar {
  return multiPositiveInfoNce(imageEmb, textEmb, owner, logitScale);
}

/** FARE: mean over images of the squared L2 distance to the reference embeddings (both L2-normalised) */
export function fareLoss(imageEmb: tf.Tensor2D, referenceEmb: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sum(tf.square(tf.sub(imageEmb, referenceEmb)), 1)) as tf.Scalar);
}

/** FARE inner objective: the summed squared distance (per-image terms are independent, so PGD is per image) */
export function fareObjective(imageEmb: tf.Tensor2D, referenceEmb: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.square(tf.sub(imageEmb, referenceEmb))) as tf.Scalar);
}
