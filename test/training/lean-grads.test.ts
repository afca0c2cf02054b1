/**
 * The trainer's backward pass (training/lean-grads.ts) gives tf.variableGrads' and tf.valueAndGrad's gradients bit
 * for bit, leaves no tensor behind, and peaks lower (it releases each op's saved tensors and output gradients as
 * soon as the op's backward has run). The lean calls come first in this file on purpose: the engine has no tape
 * yet then, the state the trainer's first step meets.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { opCacheTensorCount, withoutWeightGrads } from '../../src/engine/ops.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import { modelConfigFor } from '../../src/model/presets.js';
import type { DualEncoder } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';
import { trainableNames } from '../../training/freeze.js';
import { leanValueAndGrad, leanVariableGrads } from '../../training/lean-grads.js';
import { multiPositiveInfoNce } from '../../training/losses/clip.js';

let model: DualEncoder;
let x: tf.Tensor4D;
let ids: tf.Tensor2D;
const rows = 8;
const owner = Int32Array.from({ length: rows }, (_, i) => i);

beforeAll(async () => {
  await initBackend('wasm');
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  model = createDualEncoder(modelConfigFor('tiny', 500), 2);
  const rng = new Rng(9);
  x = tf.tensor4d(Float32Array.from({ length: rows * 32 * 32 * 3 }, () => rng.uniform(0, 1)), [rows, 32, 32, 3]);
  // padded captions of different lengths (pads are masked: their positions get no gradient)
  ids = tf.tensor2d(Int32Array.from({ length: rows * 12 }, (_, i) => (i % 12 > 6 + (Math.floor(i / 12) % 5) ? 0 : 1 + rng.int(499))), [rows, 12], 'int32');
});

afterAll(() => {
  model.dispose();
  x.dispose();
  ids.dispose();
});

const loss = () => multiPositiveInfoNce(model.imageTower(x), model.textTower(ids), owner, model.logitScale());

async function measure(grads: typeof leanVariableGrads, vars: tf.Variable[]) {
  const before = tf.memory().numBytes;
  const live = tf.memory().numTensors - opCacheTensorCount();
  let out = { value: 0, grads: new Map<string, Float32Array>() };
  const prof = await tf.profile(() => {
    const r = grads(loss, vars);
    out = { value: r.value.dataSync()[0], grads: new Map(Object.entries(r.grads).map(([k, g]) => [k, Float32Array.from(g.dataSync() as Float32Array)])) };
    r.value.dispose();
    for (const g of Object.values(r.grads)) g.dispose();
  });
  return { ...out, peak: prof.peakBytes - before, leaked: tf.memory().numTensors - opCacheTensorCount() - live };
}

const bitEqual = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

it('variable gradients: bit-identical to tf.variableGrads (all variables, and a frozen subset), no leak, lower peak', async () => {
  for (const freezeBlocks of [0, 2]) {
    const vars = trainableNames(model, { freezeBlocks, imageOnly: false }).map((n) => model.variables.get(n)!);
    const lean = await measure(leanVariableGrads, vars);
    const ref = await measure(tf.variableGrads as typeof leanVariableGrads, vars);
    expect(lean.value).toBe(ref.value);
    expect([...lean.grads.keys()]).toEqual([...ref.grads.keys()]);
    expect(lean.grads.size).toBe(vars.length);
    for (const [k, g] of ref.grads) expect(bitEqual(lean.grads.get(k)!, g), k).toBe(true);
    expect(lean.leaked).toBe(0);
    // measured: about half of tfjs' peak with every block trained
    expect(lean.peak).toBeLessThan((freezeBlocks === 0 ? 0.75 : 0.95) * ref.peak);
  }
});

it('the CLIP family too (causal text tower pooled at EOT, ln_pre, QuickGELU): bit-identical to tf.variableGrads', () => {
  const clip = createDualEncoder(
    {
      preset: 'clip-test',
      family: 'clip',
      embedDim: 32,
      image: { size: 32, patch: 8, width: 64, depth: 2, heads: 4, mlpRatio: 4 },
      text: { width: 48, depth: 2, heads: 4, mlpRatio: 4, maxLen: 16, vocabSize: 500 },
      initLogitScale: Math.log(100),
      clip: { activation: 'quick_gelu', textPooling: 'argmax', eosTokenId: 499, pixelMean: [0.48, 0.46, 0.41], pixelStd: [0.27, 0.26, 0.28], lnEps: 1e-5, resizeShortestEdge: 32 },
    },
    3,
  );
  const clipIds = tf.tensor2d(Int32Array.from({ length: rows * 10 }, (_, i) => (i % 10 === 6 ? 499 : i % 10 > 6 ? 0 : 1 + ((i * 37) % 400))), [rows, 10], 'int32');
  const f = () => multiPositiveInfoNce(clip.imageTower(x), clip.textTower(clipIds), owner, clip.logitScale());
  const vars = trainableNames(clip, { freezeBlocks: 1, imageOnly: false }).map((n) => clip.variables.get(n)!);
  const lean = leanVariableGrads(f, vars);
  const ref = tf.variableGrads(f, vars);
  expect(lean.value.dataSync()[0]).toBe(ref.value.dataSync()[0]);
  expect(Object.keys(lean.grads)).toEqual(Object.keys(ref.grads));
  for (const [k, g] of Object.entries(ref.grads)) expect(bitEqual(lean.grads[k].dataSync() as Float32Array, g.dataSync() as Float32Array), k).toBe(true);
  for (const t of [lean.value, ref.value, ...Object.values(lean.grads), ...Object.values(ref.grads), clipIds]) t.dispose();
  clip.dispose();
});

it('input gradients (the PGD primitive): bit-identical to tf.valueAndGrad, with weight gradients off', () => {
  const f = (xx: tf.Tensor4D) => tf.tidy(() => multiPositiveInfoNce(model.imageTower(xx), model.textTower(ids), owner, model.logitScale()));
  const live = tf.memory().numTensors - opCacheTensorCount();
  const lean = withoutWeightGrads(() => leanValueAndGrad(f, x));
  const ref = withoutWeightGrads(() => tf.valueAndGrad(f)(x));
  expect(lean.value.dataSync()[0]).toBe(ref.value.dataSync()[0]);
  expect(bitEqual(lean.grad.dataSync() as Float32Array, ref.grad.dataSync() as Float32Array)).toBe(true);
  expect(tf.tidy(() => tf.max(tf.abs(lean.grad)).dataSync()[0])).toBeGreaterThan(0);
  for (const t of [lean.value, lean.grad, ref.value, ref.grad]) t.dispose();
  expect(tf.memory().numTensors - opCacheTensorCount()).toBe(live);
});

it('errors like tfjs: a non-scalar loss, a loss no variable reaches', () => {
  const live = tf.memory().numTensors - opCacheTensorCount();
  expect(() => leanVariableGrads(() => model.imageTower(x) as unknown as tf.Scalar, [model.variables.get('image.proj.w')!])).toThrow(/scalar/);
  expect(() => leanVariableGrads(() => tf.sum(model.imageTower(x)) as tf.Scalar, [model.variables.get('text.proj.w')!])).toThrow(/no variable is connected/);
  expect(tf.memory().numTensors - opCacheTensorCount()).toBe(live);
});
