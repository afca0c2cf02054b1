import * as tf from '../src/engine/tf.js';
import { initBackend } from '../src/engine/backend.js';
await initBackend('wasm');
function time(name: string, f: () => tf.Tensor[], reps = 30) {
  const go = () => tf.tidy(() => { const r = f(); r.forEach(t => t.dataSync()); });
  for (let i = 0; i < 3; i++) go();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); go(); ts.push(performance.now() - t0); }
  ts.sort((a, b) => a - b);
  console.log(name.padEnd(50), 'min', ts[0].toFixed(3), 'med', ts[ts.length >> 1].toFixed(3));
}
const B = 64, T = 17, H = 4, dh = 32, D = 128, G = B * H;
const qkv = tf.randomNormal([B * T, 3 * D]);
time('current: 4D T + split', () => tf.split(tf.transpose(tf.reshape(qkv, [B, T, 3 * H, dh]), [0, 2, 1, 3]), 3, 1));
time('3D T [1,0,2] + unstack', () => tf.unstack(tf.transpose(tf.reshape(qkv, [B * T, 3, D]), [1, 0, 2])));
time('3D T + unstack + 3x 4D T', () => tf.unstack(tf.transpose(tf.reshape(qkv, [B * T, 3, D]), [1, 0, 2])).map((t, i) => tf.transpose(tf.reshape(t, [B, T, H, dh]), i === 1 ? [0, 2, 3, 1] : [0, 2, 1, 3])));
time('2D col split + 3x 4D T', () => tf.split(qkv, 3, 1).map((t, i) => tf.transpose(tf.reshape(t, [B, T, H, dh]), i === 1 ? [0, 2, 3, 1] : [0, 2, 1, 3])));
time('4D T all [B,3H,T,dh] only', () => [tf.transpose(tf.reshape(qkv, [B, T, 3 * H, dh]), [0, 2, 1, 3])]);
const q = tf.randomNormal([G, T, dh]) as tf.Tensor3D, k = tf.randomNormal([G, T, dh]) as tf.Tensor3D, kt = tf.randomNormal([G, dh, T]) as tf.Tensor3D, p = tf.randomNormal([G, T, T]) as tf.Tensor3D;
time('bmm q@kt [G,T,dh]x[G,dh,T]', () => [tf.matMul(q, kt)]);
time('bmm q@k^T flag', () => [tf.matMul(q, k, false, true)]);
time('bmm p@v [G,T,T]x[G,T,dh]', () => [tf.matMul(p, q)]);
time('bmm p^T@v flag', () => [tf.matMul(p, q, true, false)]);
time('softmax [G,T,T]', () => [tf.softmax(p)]);
time('t3 [G,T,dh]', () => [tf.transpose(q, [0, 2, 1])]);
// depthwise formulations with dynamic filters (no operator caching)
time('depthwise S=QK^T incl transposes', () => {
  const qi = tf.reshape(tf.transpose(tf.reshape(q, [B, H, T, dh]), [2, 3, 0, 1]), [1, T, dh, G]) as tf.Tensor4D;
  const kf = tf.reshape(tf.transpose(tf.reshape(tf.add(k, 0), [B, H, T, dh]), [3, 0, 1, 2]), [1, dh, G, T]) as tf.Tensor4D;
  return [tf.depthwiseConv2d(qi, kf, 1, 'valid')];
});
