import * as tf from '../../src/engine/tf.js';

/** float64 comparison of two tensors: relative L2 error and max abs difference */
export function compare(a: tf.Tensor | Float32Array | number[], b: tf.Tensor | Float32Array | number[]) {
  const av = a instanceof tf.Tensor ? a.dataSync() : a;
  const bv = b instanceof tf.Tensor ? b.dataSync() : b;
  if (av.length !== bv.length) throw new Error(`length mismatch ${av.length} vs ${bv.length}`);
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  let maxRef = 0;
  for (let i = 0; i < av.length; i++) {
    const d = Number(av[i]) - Number(bv[i]);
    num += d * d;
    den += Number(bv[i]) * Number(bv[i]);
    maxAbs = Math.max(maxAbs, Math.abs(d));
    maxRef = Math.max(maxRef, Math.abs(Number(bv[i])));
  }
  return { rel: Math.sqrt(num) / (Math.sqrt(den) + 1e-30), maxAbs, maxRef };
}

/** seeded uniform/normal data */
export function randn(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), scale));
}
