import * as tf from '../src/engine/tf.js';
import { initBackend } from '../src/engine/backend.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
const info = await initBackend((process.argv[2] as any) ?? 'wasm');
console.log(info);
const cfg = modelConfigFromPreset('tiny', 1000);
const m = createDualEncoder(cfg, 1);
const B = 64;
const x = tf.randomUniform([B, 32, 32, 3]) as tf.Tensor4D;
const ids = tf.tensor2d(Array.from({ length: B * 32 }, (_, i) => (i % 32 < 10 ? 1 + (i * 7) % 999 : 0)), [B, 32], 'int32');
const loss = () => tf.tidy(() => {
  const zi = m.imageTower(x), zt = m.textTower(ids);
  const logits = tf.mul(tf.matMul(zi, zt, false, true), m.logitScale());
  const labels = tf.oneHot(tf.range(0, B, 1, 'int32'), B);
  return tf.add(tf.losses.softmaxCrossEntropy(labels, logits), tf.losses.softmaxCrossEntropy(labels, tf.transpose(logits))).div(2) as tf.Scalar;
});
for (let r = 0; r < 5; r++) {
  const t0 = performance.now();
  const { value, grads } = tf.variableGrads(loss, [...m.variables.values()]);
  const l = value.dataSync()[0];
  Object.values(grads).forEach(g => g.dataSync());
  const t1 = performance.now();
  tf.dispose([value, ...Object.values(grads)]);
  const f0 = performance.now(); tf.tidy(() => m.imageTower(x).dataSync()); const f1 = performance.now();
  console.log('loss', l, 'full step ms', (t1 - t0).toFixed(1), 'img fwd ms', (f1 - f0).toFixed(1), 'tensors', tf.memory().numTensors);
}
