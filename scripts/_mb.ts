import * as tf from '../src/engine/tf.js';
import { initBackend } from '../src/engine/backend.js';
await initBackend('wasm');
function time(name: string, f: () => tf.Tensor | tf.Tensor[], flops = 0, reps = 20) {
  const go = () => tf.tidy(() => { const r = f(); (Array.isArray(r) ? r : [r])[0].dataSync(); });
  for (let i = 0; i < 3; i++) go();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) { const t0 = performance.now(); go(); ts.push(performance.now() - t0); }
  ts.sort((a, b) => a - b); const med = ts[ts.length >> 1];
  console.log(name.padEnd(44), med.toFixed(3), 'ms', flops ? (flops / med / 1e6).toFixed(1) + ' GF/s' : '');
}
const B = 64, T = 17, H = 4, dh = 32, D = 128;
const qkv = tf.randomNormal([B * T, 3 * D]);
time('5D transpose [B,T,3,H,dh]->[2,0,3,1,4]', () => tf.transpose(tf.reshape(qkv, [B, T, 3, H, dh]), [2, 0, 3, 1, 4]));
time('slice q + 4D transpose [0,2,1,3] x3', () => [0, 1, 2].map(i => tf.transpose(tf.reshape(tf.slice(qkv, [0, i * D], [B * T, D]), [B, T, H, dh]), [0, 2, 1, 3])));
time('3D transpose [B*T,3H,dh] -> [1,0,2]', () => tf.transpose(tf.reshape(qkv, [B, T, 3 * H * dh]), [0, 2, 1]));
time('4D transpose [B,T,3H,dh] -> [0,2,1,3]', () => tf.transpose(tf.reshape(qkv, [B, T, 3 * H, dh]), [0, 2, 1, 3]));
const o = tf.randomNormal([B, H, T, dh]);
time('merge 4D [B,H,T,dh]->[0,2,1,3]', () => tf.transpose(o, [0, 2, 1, 3]));
const x = tf.randomNormal([1088, 128]), w = tf.randomNormal([128, 512]), w2 = tf.randomNormal([512, 128]);
const h = tf.randomNormal([1088, 512]);
time('mm 1088x128x512', () => { let y = tf.matMul(x, w); return y; }, 2 * 1088 * 128 * 512);
time('mm 1088x128x512 x10 chained', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.matMul(x, w)); return [r[9], ...r]; }, 10 * 2 * 1088 * 128 * 512);
time('mm 1088x512x128 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.matMul(h, w2)); return [r[9]]; }, 10 * 2 * 1088 * 128 * 512);
time('fused mm+bias 1088x128x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: tf.zeros([512]) })); return [r[9]]; }, 10 * 2 * 1088 * 128 * 512);
const xT = tf.randomNormal([128, 1088]);
time('dW: 128x1088 @ 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.matMul(xT, h)); return [r[9]]; }, 10 * 2 * 1088 * 128 * 512);
const hT = tf.randomNormal([512, 1088]);
time('dW: 512x1088 @ 1088x128 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.matMul(hT, x)); return [r[9]]; }, 10 * 2 * 1088 * 128 * 512);
time('elementwise mul 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.mul(h, h)); return [r[9]]; });
time('sigmoid 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.sigmoid(h)); return [r[9]]; });
time('add scalar 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.add(h, 1)); return [r[9]]; });
time('transpose2d 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.transpose(h)); return [r[9]]; });
time('transpose trick 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.reshape(tf.transpose(tf.reshape(h, [17, 64, 512]), [2, 0, 1]), [512, 1088])); return [r[9]]; });
time('transpose trick32 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.reshape(tf.transpose(tf.reshape(h, [34, 32, 512]), [2, 0, 1]), [512, 1088])); return [r[9]]; });
time('transpose trick16 1088x512 x10', () => { const r: tf.Tensor[] = []; for (let i = 0; i < 10; i++) r.push(tf.reshape(tf.transpose(tf.reshape(h, [68, 16, 512]), [2, 0, 1]), [512, 1088])); return [r[9]]; });
