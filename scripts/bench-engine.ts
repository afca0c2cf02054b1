/**
 * Engine benchmark: the dual encoder's image tower (and the full dual-encoder step) on one backend.
 *
 *   npm run bench:engine -- [--backend auto|wasm|cpu|tensorflow] [--preset tiny] [--batch 64] [--repeats 10]
 *                           [--warmup 3] [--threads 1] [--json OUT]
 *
 * Measured (median wall time of `repeats` runs after `warmup` runs; each run ends with a dataSync of every
 * output so queued work is included):
 * - forward:    imageTower(x) for x [B,S,S,3]
 * - inputGrad:  d/dx of sum(imageTower(x) * t) for fixed unit vectors t: one PGD step's gradient, w.r.t. the
 *               pixels only (withoutWeightGrads: no weight gradients computed)
 * - trainStep:  loss and gradients of every image-tower weight for a CLIP-style loss against fixed text
 *               embeddings (cross-entropy of logitScale * zi t^T with the diagonal as targets)
 * - fullStep:   loss and gradients of every variable for the symmetric InfoNCE loss of image and text towers
 *               (captions of `seqLen` tokens, about half padding)
 * GFLOP/s = analytic matmul FLOPs (src/model/flops.ts: matmul 2*M*N*K; backward of a product 2x its forward)
 *           / median time. Elementwise work is not counted.
 */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import * as tf from '../src/engine/tf.js';
import { initBackend, type BackendKind } from '../src/engine/backend.js';
import { withoutWeightGrads } from '../src/engine/ops.js';
import { createDualEncoder, modelConfigFromPreset } from '../src/model/dual-encoder.js';
import type { PresetName } from '../src/model/presets.js';
import { imageTowerFlops, textTowerFlops } from '../src/model/flops.js';
import { Rng } from '../src/util/rng.js';

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string', default: 'auto' },
    preset: { type: 'string', default: 'tiny' },
    batch: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    json: { type: 'string' },
    'skip-full': { type: 'boolean', default: false },
  },
});

const batch = Number(args.batch);
const repeats = Number(args.repeats);
const warmup = Number(args.warmup);
const info = await initBackend(args.backend as BackendKind, { threads: Number(args.threads) });
const config = modelConfigFromPreset(args.preset as PresetName, 1000);
const model = createDualEncoder(config, 0);
const rng = new Rng(1);
const s = config.image.size;
const L = config.text.maxLen;

const px = new Float32Array(batch * s * s * 3).map(() => rng.next());
const x = tf.tensor4d(px, [batch, s, s, 3]);
const ids = new Int32Array(batch * L);
for (let b = 0; b < batch; b++) {
  const len = 4 + rng.int(L / 2);
  for (let j = 0; j < len; j++) ids[b * L + j] = 1 + rng.int(999);
}
const idsT = tf.tensor2d(ids, [batch, L], 'int32');
const textEmb = tf.tidy(() => {
  const t = tf.randomNormal([batch, config.embedDim], 0, 1, 'float32', 7);
  return tf.div(t, tf.norm(t, 'euclidean', 1, true)) as tf.Tensor2D;
});
const eye = tf.oneHot(tf.range(0, batch, 1, 'int32'), batch);
const imageVars = [...model.variables.entries()].filter(([n]) => n.startsWith('image.')).map(([, v]) => v);
const allVars = [...model.variables.values()];

function syncAll(ts: tf.Tensor[]): void {
  for (const t of ts) t.dataSync();
}

function clipLoss(zi: tf.Tensor2D, zt: tf.Tensor2D): tf.Scalar {
  const logits = tf.mul(tf.matMul(zi, zt, false, true), model.logitScale());
  return tf.losses.softmaxCrossEntropy(eye, logits) as tf.Scalar;
}

const cases: Record<string, () => void> = {
  forward: () => tf.tidy(() => syncAll([model.imageTower(x)])),
  inputGrad: () =>
    tf.tidy(() => {
      const g = withoutWeightGrads(() =>
        tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(model.imageTower(xi as tf.Tensor4D), textEmb)))(x),
      );
      syncAll([g]);
    }),
  trainStep: () => {
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => clipLoss(model.imageTower(x), textEmb)), imageVars);
    syncAll([value, ...Object.values(grads)]);
    tf.dispose([value, ...Object.values(grads)]);
  },
  fullStep: () => {
    const { value, grads } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const zi = model.imageTower(x);
          const zt = model.textTower(idsT);
          const logits = tf.mul(tf.matMul(zi, zt, false, true), model.logitScale());
          const a = tf.losses.softmaxCrossEntropy(eye, logits);
          const b = tf.losses.softmaxCrossEntropy(eye, tf.transpose(logits));
          return tf.mul(tf.add(a, b), 0.5) as tf.Scalar;
        }),
      allVars,
    );
    syncAll([value, ...Object.values(grads)]);
    tf.dispose([value, ...Object.values(grads)]);
  },
};

const imgF = imageTowerFlops(config, batch);
const txtF = textTowerFlops(config, batch, L);
const flops: Record<string, number> = {
  forward: imgF.forward,
  inputGrad: imgF.inputGrad,
  trainStep: imgF.trainStep,
  fullStep: imgF.trainStep + txtF.trainStep,
};

function median(a: number[]): number {
  const b = [...a].sort((p, q) => p - q);
  const m = b.length >> 1;
  return b.length % 2 ? b[m] : (b[m - 1] + b[m]) / 2;
}

const results: Record<string, { ms: number; gflops: number; gflop: number; runsMs: number[] }> = {};
const order = args['skip-full'] ? ['forward', 'inputGrad', 'trainStep'] : ['forward', 'inputGrad', 'trainStep', 'fullStep'];
// warm up every case first (first calls compile kernels, grow the wasm heap and create cached constants)
for (const name of order) for (let i = 0; i < warmup; i++) cases[name]();
const tensorsBefore = tf.memory().numTensors;
for (const name of order) {
  const f = cases[name];
  const runs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    f();
    runs.push(performance.now() - t0);
  }
  const ms = median(runs);
  results[name] = { ms, gflops: flops[name] / 1e9 / (ms / 1e3), gflop: flops[name] / 1e9, runsMs: runs.map((r) => +r.toFixed(2)) };
}
const tensorsAfter = tf.memory().numTensors;

const out = {
  backend: info.name,
  reason: info.reason,
  preset: config.preset,
  batch,
  imageSize: s,
  textLen: L,
  repeats,
  warmup,
  node: process.version,
  date: new Date().toISOString(),
  flopFormula: 'matmul FLOPs 2*M*N*K; backward of each product 2x forward; see src/model/flops.ts',
  ...Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { ms: +v.ms.toFixed(2), gflops: +v.gflops.toFixed(2), gflop: +v.gflop.toFixed(3), runsMs: v.runsMs }])),
  tensorLeak: tensorsAfter - tensorsBefore,
};

console.log(`backend: ${info.name} (${info.reason})`);
console.log(`preset ${config.preset}, batch ${batch}, ${s}x${s} images, text length ${L}; median of ${repeats} after ${warmup} warm-up`);
console.log('case        GFLOP   median ms   GFLOP/s   min ms   max ms');
for (const name of order) {
  const r = results[name];
  console.log(
    `${name.padEnd(10)} ${r.gflop.toFixed(3).padStart(6)} ${r.ms.toFixed(1).padStart(11)} ${r.gflops.toFixed(1).padStart(9)} ${Math.min(...r.runsMs).toFixed(1).padStart(8)} ${Math.max(...r.runsMs).toFixed(1).padStart(8)}`,
  );
}
if (out.tensorLeak !== 0) console.log(`WARNING: tensor count changed by ${out.tensorLeak} across the benchmark`);
if (args.json) {
  writeFileSync(args.json, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${args.json}`);
}
model.dispose();
