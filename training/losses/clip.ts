import { tf } from '../../src/engine/tf.js';

/**
 * Symmetric multi-positive InfoNCE.
 *
 * imageEmb [B,E] and textEmb [T,E] are L2-normalised; textOwner[t] is the row of the image that text t describes.
 * image->text: every caption of image i is a positive, so the loss of row i is
 *   logsumexp_t(l_it) - logsumexp_{t in pos(i)}(l_it)   (the "any positive" form: -log sum_pos p(t|i))
 * text->image: each caption has exactly one gold image in the batch, an ordinary cross-entropy.
 * The loss is the mean of the two directions.
 * Hard negatives (optional) are never queries, only extra denominator terms:
 * - negatives.texts [N,E]: texts that describe no image of the batch; they join every image's image->text denominator;
 * - negatives.images [M,E]: images that no caption of the batch describes; they join every caption's text->image
 *   denominator.
 */
export interface HardNegatives {
  texts?: tf.Tensor2D;
  images?: tf.Tensor2D;
}

export function multiPositiveInfoNce(
  imageEmb: tf.Tensor2D,
  textEmb: tf.Tensor2D,
  textOwner: Int32Array,
  logitScale: tf.Scalar,
  negatives: HardNegatives = {},
): tf.Scalar {
  return tf.tidy(() => {
    const b = imageEmb.shape[0];
    const t = textEmb.shape[0];
    if (textOwner.length !== t) throw new Error(`textOwner has ${textOwner.length} entries for ${t} texts`);
    const mask = new Float32Array(b * t);
    for (let j = 0; j < t; j++) {
      const owner = textOwner[j];
      if (owner < 0 || owner >= b) throw new Error(`textOwner[${j}] = ${owner} is outside the batch of ${b} images`);
      mask[owner * t + j] = 1;
    }
    const pos = tf.tensor2d(mask, [b, t]);
    const logits = tf.mul(tf.matMul(imageEmb, textEmb, false, true), logitScale) as tf.Tensor2D; // [B,T]
    const negInf = tf.mul(tf.sub(1, pos), -1e9);
    // image -> text
    const i2tAll = negatives.texts
      ? tf.logSumExp(tf.concat([logits, tf.mul(tf.matMul(imageEmb, negatives.texts, false, true), logitScale)], 1), 1)
      : tf.logSumExp(logits, 1);
    const i2tPos = tf.logSumExp(tf.add(logits, negInf), 1);
    const i2t = tf.mean(tf.sub(i2tAll, i2tPos));
    // text -> image (columns)
    const t2iAll = negatives.images
      ? tf.logSumExp(tf.concat([logits, tf.mul(tf.matMul(negatives.images, textEmb, false, true), logitScale)], 0), 0)
      : tf.logSumExp(logits, 0);
    const t2iGold = tf.sum(tf.mul(logits, pos), 0);
    const t2i = tf.mean(tf.sub(t2iAll, t2iGold));
    return tf.mul(tf.add(i2t, t2i), 0.5) as tf.Scalar;
  });
}
