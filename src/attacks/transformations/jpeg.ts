/**
 * Expectation over JPEG encoding for PGD (the objective sees what a server decodes, not the float image).
 *
 * JPEG is not differentiable, so each replica is the image's JPEG round trip at one quality in the forward pass and
 * the identity in the backward pass (BPDA, Athalye et al. 2018: the gradient at the decoded image is applied to
 * the image itself). The expectation is over a fixed set of qualities around the target's (default q-10, q-5, q,
 * q+5), averaged like SGA's rescaled replicas, so a perturbation that survives only one exact quantisation table is
 * not preferred. The encoder here is jpeg-js (pure JS, synchronous, as the tfjs loop needs): baseline JPEG with
 * the IJG tables scaled by quality and no chroma subsampling, like libjpeg's 4:4:4 (measured on a 32 px test image
 * at q=85: mean |diff| 0.0024 between the two decodes, against 0.020 from the original); the probe still measures
 * on sharp's (libjpeg-turbo) encoding, 4:4:4 (probe/wire.ts).
 */
import jpeg from 'jpeg-js';
import { tf } from '../../engine/tf.js';
import type { CustomGradFn } from '../../engine/ops.js';
import type { InputTransform } from './pixel.js';
import { quantize } from '../../util/quantize.js';

/** the qualities the expectation runs over for a target quality */
export function eotQualities(quality: number): number[] {
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new Error(`JPEG quality must be an integer 1..100, got ${quality}`);
  return [...new Set([quality - 10, quality - 5, quality, quality + 5].map((q) => Math.min(100, Math.max(1, q))))];
}

/** one RGB image [S, S, 3] in [0, 1] through JPEG at `quality` and back (8-bit quantised on the way) */
export function jpegRoundTripFloat(rgb: Float32Array, size: number, quality: number): Float32Array {
  const u8 = quantize(rgb);
  const rgba = Buffer.alloc(size * size * 4);
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < 3; c++) rgba[p * 4 + c] = u8[p * 3 + c];
    rgba[p * 4 + 3] = 255;
  }
  const encoded = jpeg.encode({ data: rgba, width: size, height: size }, quality);
  const decoded = jpeg.decode(encoded.data, { useTArray: true, formatAsRGBA: true });
  const out = new Float32Array(size * size * 3);
  for (let p = 0; p < size * size; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = decoded.data[p * 4 + c] / 255;
  return out;
}

/**
 * x [m, S, S, 3] -> its JPEG round trips at each quality, version-major [r*m, S, S, 3], in the forward pass (x read
 * from the backend once); the identity per replica in the backward pass (the replicas' gradients summed).
 * customGrad's forward is synchronous, so x is read with dataSync: on webgpu that works only because the search
 * downloaded x beforehand (`readsHostPixels` below; pgdSearch's hostReadsInput).
 */
function straightThroughJpeg(qualities: readonly number[]): (x: tf.Tensor4D) => tf.Tensor4D {
  return tf.customGrad(((x: tf.Tensor4D) => {
    const [m, S] = x.shape;
    const per = S * S * 3;
    const src = x.dataSync() as Float32Array;
    const out = new Float32Array(qualities.length * src.length);
    qualities.forEach((q, v) => {
      for (let i = 0; i < m; i++) out.set(jpegRoundTripFloat(src.subarray(i * per, (i + 1) * per), S, q), (v * m + i) * per);
    });
    return {
      value: tf.tensor4d(out, [qualities.length * m, S, S, 3]),
      gradFunc: (dy: tf.Tensor4D) => [tf.sum(tf.reshape(dy, [qualities.length, m, S, S, 3]), 0)],
    };
  }) as unknown as CustomGradFn) as unknown as (x: tf.Tensor4D) => tf.Tensor4D;
}

/** InputTransform for runPgdStage: replicas = the JPEG round trips at eotQualities(quality), version-major */
export function jpegEot(quality: number): InputTransform {
  const qualities = eotQualities(quality);
  const pass = straightThroughJpeg(qualities);
  return { name: `jpeg-eot(q=${qualities.join(',')})`, replicas: qualities.length, readsHostPixels: true, apply: (x) => pass(x) };
}
