/**
 * Can an image tower learn an attribute of `scenes` at all, in the demo's budget? A supervised check that takes
 * contrastive learning out of the question: the tower (the tiny preset's ViT, or a small convolutional network
 * for comparison) plus a linear head, trained with sigmoid cross-entropy to say which shapes (or colours) are
 * present in each training image; reported per epoch on the test split. The evidence behind "shape is not learned"
 * in docs/results.md.
 *
 *   npx tsx scripts/shape-learnability.ts --data data/scenes/dataset_scenes.json [--arch vit|cnn] [--task shape|color]
 *     [--epochs 12] [--lr 5e-4] [--size 32] [--batch 64] [--patch 8] [--shift 0] [--stem linear|conv] [--seed 0] [--json OUT]
 *
 * --shift N: each training image is translated by a random offset in [-N, N] pixels per axis every time it is
 * seen (edge pixels repeat), a shape-preserving augmentation against memorising the training images.
 *
 * Per-label accuracy is over (image, label) pairs; the base rate of answering "absent" everywhere is printed with
 * it (about 67% for shapes: most images hold 1-3 of the 6 shapes). The CNN computes its 3x3 convolutions as
 * im2col + matmul, because the wasm backend's conv filter gradient runs through the slow cpu bridge.
 */
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { parseFlags } from './flag-errors.js';
import * as tf from '../src/engine/tf.js';
import { initBackend } from '../src/engine/backend.js';
import { createDualEncoder } from '../src/model/dual-encoder.js';
import { modelConfigFor } from '../src/model/presets.js';
import { loadDataset } from '../src/data/load.js';
import type { DatasetSplit } from '../src/data/types.js';
import { COLORS, SHAPES } from '../src/data/scenes/vocab.js';
import { Rng } from '../src/util/rng.js';

const flags = z
  .object({
    data: z.string({ error: '--data dataset_scenes.json is required' }),
    arch: z.enum(['vit', 'cnn']).default('vit'),
    task: z.enum(['shape', 'color']).default('shape'),
    epochs: z.coerce.number().int().positive().default(12),
    lr: z.coerce.number().positive().default(5e-4),
    patch: z.coerce.number().int().positive().default(8),
    size: z.coerce.number().int().min(8).max(256).default(32),
    batch: z.coerce.number().int().min(1).max(1024).default(64),
    shift: z.coerce.number().int().min(0).max(15).default(0),
    stem: z.enum(['linear', 'conv']).default('linear'),
    seed: z.coerce.number().int().min(0).default(0),
    json: z.string().optional(),
  })
  .strict();
const o = parseFlags(flags);

await initBackend('wasm');
const S = o.size;
const per = S * S * 3;
const [train, test] = await Promise.all(['train', 'test'].map((split) => loadDataset(o.data, { split, size: S, onProgress: () => {} })));
const classes: readonly string[] = o.task === 'shape' ? SHAPES : COLORS;
const K = classes.length;
function labels(s: DatasetSplit): Float32Array {
  if (!s.scenes || s.scenes.some((g) => !g)) throw new Error(`${o.data}: split ${s.name} has images without a scene graph`);
  const y = new Float32Array(s.count * K);
  s.scenes.forEach((g, i) => {
    for (const obj of g!.objects) y[i * K + classes.indexOf(o.task === 'shape' ? obj.shape : obj.color)] = 1;
  });
  return y;
}
const yTrain = labels(train);
const yTest = labels(test);
const pixels = (s: DatasetSplit, idx: number[], shift?: Rng) => {
  const out = new Float32Array(idx.length * per);
  const clamp = (v: number) => Math.min(S - 1, Math.max(0, v));
  idx.forEach((i, k) => {
    const dy = shift ? shift.int(2 * o.shift + 1) - o.shift : 0;
    const dx = shift ? shift.int(2 * o.shift + 1) - o.shift : 0;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const src = i * per + (clamp(y - dy) * S + clamp(x - dx)) * 3;
        const dst = k * per + (y * S + x) * 3;
        for (let c = 0; c < 3; c++) out[dst + c] = s.images[src + c] / 255;
      }
    }
  });
  return out;
};

const rng = new Rng(o.seed);
const normal = (shape: number[], std: number) => tf.variable(tf.randomNormal(shape, 0, std, 'float32', rng.int(2 ** 30)));
let features: (x: tf.Tensor4D) => tf.Tensor2D;
let featureDim: number;
let variables: tf.Variable[];
if (o.arch === 'vit') {
  // the text tower is built but unused: any vocabulary size will do
  const config = modelConfigFor('tiny', 1000, { imageSize: S, patch: o.patch, stem: o.stem });
  const model = createDualEncoder(config, o.seed);
  features = (x) => model.imageTower(x);
  featureDim = config.embedDim;
  variables = [...model.variables.entries()].filter(([name]) => name.startsWith('image.')).map(([, v]) => v);
} else {
  // 3x3 'same' convolution as im2col + matmul; stride 2 keeps every other row and column
  const conv = (x: tf.Tensor4D, k: tf.Variable, stride: 1 | 2): tf.Tensor4D => {
    const [B, H, W, C] = x.shape;
    const out = k.shape[1]!;
    const xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]);
    const cols: tf.Tensor[] = [];
    for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) cols.push(tf.slice(xp, [0, dy, dx, 0], [B, H, W, C]));
    const y = tf.reshape(tf.matMul(tf.reshape(tf.concat(cols, 3), [B * H * W, 9 * C]), k), [B, H, W, out]);
    if (stride === 1) return y as tf.Tensor4D;
    return tf.reshape(tf.slice(tf.reshape(y, [B, H / 2, 2, W / 2, 2, out]), [0, 0, 0, 0, 0, 0], [B, H / 2, 1, W / 2, 1, out]), [B, H / 2, W / 2, out]) as tf.Tensor4D;
  };
  const k1 = normal([27, 32], Math.sqrt(2 / 27));
  const k2 = normal([288, 64], Math.sqrt(2 / 288));
  const k3 = normal([576, 64], Math.sqrt(2 / 576));
  features = (x) => {
    let h = tf.relu(conv(tf.sub(x, 0.5) as tf.Tensor4D, k1, 2)) as tf.Tensor4D; // 16x16x32
    h = tf.relu(conv(h, k2, 1)) as tf.Tensor4D; // 16x16x64
    h = tf.relu(conv(h, k3, 2)) as tf.Tensor4D; // 8x8x64
    return tf.mean(h, [1, 2]) as tf.Tensor2D;
  };
  featureDim = 64;
  variables = [k1, k2, k3];
}
const head = normal([featureDim, K], 0.1);
// the ViT's embedding is L2-normalised: scale its logits as CLIP scales cosine similarities
const logitScale = o.arch === 'vit' ? 10 : 1;
const optimizer = tf.train.adam(o.lr);
const baseRate = 1 - yTest.reduce((a, b) => a + b, 0) / yTest.length;
const history: { epoch: number; trainLoss: number; exactSet: number; perLabel: number; seconds: number }[] = [];
console.log(`${o.arch} ${o.task}: ${train.count} train / ${test.count} test images; "absent everywhere" base rate ${(100 * baseRate).toFixed(1)}%`);
for (let epoch = 0; epoch < o.epochs; epoch++) {
  const t0 = Date.now();
  const order = [...Array(train.count).keys()];
  rng.shuffle(order);
  let total = 0;
  let batches = 0;
  for (let b = 0; b + o.batch <= order.length; b += o.batch) {
    const idx = order.slice(b, b + o.batch);
    const x = tf.tensor4d(pixels(train, idx, o.shift > 0 ? rng : undefined), [o.batch, S, S, 3]);
    const y = tf.tensor2d(Float32Array.from(idx.flatMap((i) => [...yTrain.subarray(i * K, (i + 1) * K)])), [o.batch, K]);
    const loss = optimizer.minimize(() => tf.losses.sigmoidCrossEntropy(y, tf.mul(tf.matMul(features(x), head), logitScale)) as tf.Scalar, true, [...variables, head])!;
    total += loss.dataSync()[0];
    batches++;
    tf.dispose([x, y, loss]);
  }
  const logits = tf.tidy(() => {
    const x = tf.tensor4d(pixels(test, [...Array(test.count).keys()]), [test.count, S, S, 3]);
    return tf.matMul(features(x), head).dataSync();
  });
  let exact = 0;
  let right = 0;
  for (let i = 0; i < test.count; i++) {
    let all = true;
    for (let k = 0; k < K; k++) {
      const ok = logits[i * K + k] > 0 === yTest[i * K + k] > 0;
      right += +ok;
      all &&= ok;
    }
    exact += +all;
  }
  const row = { epoch: epoch + 1, trainLoss: total / batches, exactSet: exact / test.count, perLabel: right / (test.count * K), seconds: (Date.now() - t0) / 1000 };
  history.push(row);
  console.log(`epoch ${row.epoch}: train loss ${row.trainLoss.toFixed(3)}; test per-label ${(100 * row.perLabel).toFixed(1)}%, exact set ${(100 * row.exactSet).toFixed(1)}% (${row.seconds.toFixed(0)} s, ${tf.memory().numTensors} tensors)`);
}
if (o.json) writeFileSync(o.json, JSON.stringify({ ...o, baseRate, history }, null, 2) + '\n');
process.exit(0);
