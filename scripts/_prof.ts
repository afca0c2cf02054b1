import * as tf from '../src/engine/tf.js';
import { initBackend } from '../src/engine/backend.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
await initBackend((process.argv[2] as any) ?? 'wasm');
const m = createDualEncoder(modelConfigFromPreset('tiny', 1000), 1);
const B = 64;
const x = tf.randomUniform([B, 32, 32, 3]) as tf.Tensor4D;
const zt = tf.tidy(() => tf.randomNormal([B, 128]));
const mode = process.argv[3] ?? 'fwd';
const require_ops = await import('../src/engine/ops.js');
const vars = [...m.variables.values()].filter((v) => v.name.includes('image'));
const run = () => {
  if (mode === 'igrad') { const { withoutWeightGrads } = require_ops; tf.tidy(() => { withoutWeightGrads(() => tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(m.imageTower(xi as tf.Tensor4D), zt)))(x)).dataSync(); }); return; }
  if (mode === 'fwd') tf.tidy(() => { m.imageTower(x).dataSync(); });
  else { const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.mul(m.imageTower(x), zt)) as tf.Scalar), vars as tf.Variable[]); value.dataSync(); Object.values(grads).forEach(g => g.dataSync()); tf.dispose([value, ...Object.values(grads)]); }
};
for (let i = 0; i < 3; i++) run();
const t0 = performance.now(); run(); console.log('wall', (performance.now() - t0).toFixed(1));
const prof = await tf.profile(() => { run(); });
const agg = new Map<string, { n: number; ms: number }>();
for (const k of prof.kernels) {
  const key = k.name + ' ' + JSON.stringify(k.inputShapes);
  const a = agg.get(key) ?? { n: 0, ms: 0 };
  a.n++; a.ms += k.kernelTimeMs as number; agg.set(key, a);
}
const rows = [...agg.entries()].sort((a, b) => b[1].ms - a[1].ms);
let tot = 0; for (const [, v] of rows) tot += v.ms;
console.log('kernels total ms', tot.toFixed(1), 'count', prof.kernels.length);
for (const [k, v] of rows.slice(0, 30)) console.log(v.ms.toFixed(2).padStart(8), String(v.n).padStart(4), k.slice(0, 110));
