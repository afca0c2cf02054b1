import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import {
  attention,
  attentionFirstToken,
  batchMatMul,
  colSum,
  firstRows,
  gelu,
  inputGrad,
  l2Normalize,
  layerNorm,
  linear,
  transpose2d,
  withoutWeightGrads,
} from '../../src/engine/ops.js';
import { compare, randn } from './helpers.js';

// Tolerances: float32 throughout; the fast and naive formulations sum in different orders.
const FWD_TOL = 2e-5; // relative L2
const GRAD_TOL = 1e-4; // relative L2

function naiveLayerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, 1, true);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b) as tf.Tensor2D;
}

function naiveGelu(x: tf.Tensor): tf.Tensor {
  const u = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(u)));
}

function naiveAttention(
  x: tf.Tensor2D,
  p: { qkvW: tf.Tensor2D; qkvB: tf.Tensor1D; projW: tf.Tensor2D; projB: tf.Tensor1D },
  B: number,
  T: number,
  H: number,
  keyMask: tf.Tensor2D | null,
): tf.Tensor2D {
  const D = x.shape[1];
  const dh = D / H;
  const qkv = tf.add(tf.matMul(x, p.qkvW), p.qkvB);
  const split = (i: number) =>
    tf.transpose(tf.reshape(tf.slice(qkv, [0, i * D], [B * T, D]), [B, T, H, dh]), [0, 2, 1, 3]) as tf.Tensor4D;
  const q = split(0);
  const k = split(1);
  const v = split(2);
  let s = tf.div(tf.matMul(q, k, false, true), Math.sqrt(dh));
  if (keyMask) s = tf.add(s, tf.reshape(keyMask, [B, 1, 1, T]));
  const o = tf.matMul(tf.softmax(s), v);
  const merged = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * T, D]) as tf.Tensor2D;
  return tf.add(tf.matMul(merged, p.projW), p.projB) as tf.Tensor2D;
}

/** compare value and gradients (w.r.t. all args) of fast vs naive under the loss sum(out * r) */
function checkFwdBwd(
  fast: (...a: tf.Tensor[]) => tf.Tensor,
  naive: (...a: tf.Tensor[]) => tf.Tensor,
  args: tf.Tensor[],
  seed: number,
) {
  tf.tidy(() => {
    const yf = fast(...args);
    const yn = naive(...args);
    expect(yf.shape).toEqual(yn.shape);
    expect(compare(yf, yn).rel).toBeLessThan(FWD_TOL);
    const r = randn(yn.shape, seed);
    const gf = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(fast(...a), r)))(args);
    const gn = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(naive(...a), r)))(args);
    gf.forEach((g, i) => {
      expect(g.shape).toEqual(gn[i].shape);
      expect(compare(g, gn[i]).rel, `grad of arg ${i}`).toBeLessThan(GRAD_TOL);
    });
  });
}

describe.each(['wasm', 'cpu'] as const)('fast ops vs naive tf ops on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it('transpose2d (both the blocked and the plain path)', () => {
    tf.tidy(() => {
      for (const [m, n] of [
        [1088, 384],
        [2048, 128],
        [17, 5],
        [128, 64],
      ]) {
        const x = randn([m, n], m + n) as tf.Tensor2D;
        expect(compare(transpose2d(x), tf.transpose(x)).maxAbs).toBe(0);
      }
    });
  });

  it('colSum', () => {
    tf.tidy(() => {
      const x = randn([300, 70], 3) as tf.Tensor2D;
      expect(compare(colSum(x), tf.sum(x, 0)).rel).toBeLessThan(FWD_TOL);
    });
  });

  it('linear with and without bias', () => {
    const x = randn([128, 48], 1);
    const w = randn([48, 40], 2, 0.2);
    const b = randn([40], 3);
    checkFwdBwd(
      (a, c, d) => linear(a as tf.Tensor2D, c as tf.Tensor2D, d as tf.Tensor1D),
      (a, c, d) => tf.add(tf.matMul(a as tf.Tensor2D, c as tf.Tensor2D), d),
      [x, w, b],
      4,
    );
    checkFwdBwd(
      (a, c) => linear(a as tf.Tensor2D, c as tf.Tensor2D),
      (a, c) => tf.matMul(a as tf.Tensor2D, c as tf.Tensor2D),
      [x, w],
      5,
    );
    tf.dispose([x, w, b]);
  });

  it('layerNorm', () => {
    const x = tf.tidy(() => tf.add(randn([64, 96], 6, 3), 1.5));
    const g = tf.tidy(() => tf.add(randn([96], 7, 0.3), 1));
    const b = randn([96], 8, 0.3);
    checkFwdBwd(
      (a, c, d) => layerNorm(a as tf.Tensor2D, c as tf.Tensor1D, d as tf.Tensor1D),
      (a, c, d) => naiveLayerNorm(a as tf.Tensor2D, c as tf.Tensor1D, d as tf.Tensor1D),
      [x, g, b],
      9,
    );
    tf.dispose([x, g, b]);
  });

  it('gelu (tanh approximation) incl. large |x|', () => {
    const x = tf.tidy(() => tf.concat([randn([500], 10, 2), tf.tensor1d([-30, -8, -1e-3, 0, 1e-3, 8, 30])]));
    checkFwdBwd((a) => gelu(a), (a) => naiveGelu(a), [x], 11);
    x.dispose();
  });

  it('l2Normalize', () => {
    tf.tidy(() => {
      const x = randn([10, 16], 12) as tf.Tensor2D;
      const y = l2Normalize(x);
      const n = tf.norm(y, 'euclidean', 1).dataSync();
      for (const v of n) expect(v).toBeCloseTo(1, 5);
      expect(Array.from(l2Normalize(tf.zeros([1, 4]) as tf.Tensor2D).dataSync())).toEqual([0, 0, 0, 0]);
    });
  });

  for (const masked of [false, true]) {
    it(`attention (${masked ? 'with' : 'without'} key-padding mask)`, () => {
      const B = 3;
      const T = 7;
      const D = 32;
      const H = 4;
      const x = randn([B * T, D], 13);
      const qkvW = randn([D, 3 * D], 14, 0.3);
      const qkvB = randn([3 * D], 15, 0.1);
      const projW = randn([D, D], 16, 0.2);
      const projB = randn([D], 17, 0.1);
      const mask = masked
        ? tf.tensor2d(
            Array.from({ length: B * T }, (_, i) => (i % T >= [7, 4, 1][Math.floor(i / T)] ? -1e9 : 0)),
            [B, T],
          )
        : null;
      const wrap =
        (impl: typeof attention) =>
        (...a: tf.Tensor[]) =>
          impl(
            a[0] as tf.Tensor2D,
            { qkvW: a[1] as tf.Tensor2D, qkvB: a[2] as tf.Tensor1D, projW: a[3] as tf.Tensor2D, projB: a[4] as tf.Tensor1D },
            B,
            T,
            H,
            mask,
          );
      checkFwdBwd(wrap(attention), wrap(naiveAttention as typeof attention), [x, qkvW, qkvB, projW, projB], 18);
      tf.dispose([x, qkvW, qkvB, projW, projB, ...(mask ? [mask] : [])]);
    });
  }

  it('batchMatMul (depthwise-conv formulation on wasm) for every transpose combination', () => {
    tf.tidy(() => {
      const G = 6;
      for (const [m, k, n] of [
        [17, 32, 17],
        [17, 17, 32],
        [1, 32, 17],
        [5, 3, 7],
      ]) {
        for (const ta of [false, true]) {
          for (const tb of [false, true]) {
            const a = randn(ta ? [G, k, m] : [G, m, k], m * 100 + k) as tf.Tensor3D;
            const b = randn(tb ? [G, n, k] : [G, k, n], n * 100 + k + 1) as tf.Tensor3D;
            const got = batchMatMul(a, b, ta, tb);
            expect(got.shape).toEqual([G, m, n]);
            expect(compare(got, tf.matMul(a, b, ta, tb)).rel, `[${m},${k},${n}] ${ta} ${tb}`).toBeLessThan(FWD_TOL);
          }
        }
      }
      expect(() => batchMatMul(tf.zeros([2, 3, 4]) as tf.Tensor3D, tf.zeros([2, 5, 6]) as tf.Tensor3D)).toThrow(/incompatible/);
    });
  });

  it('attentionFirstToken == first rows of attention (values and gradients)', () => {
    const B = 3;
    const T = 6;
    const D = 32;
    const H = 4;
    const x = randn([B * T, D], 31);
    const qkvW = randn([D, 3 * D], 32, 0.3);
    const qkvB = randn([3 * D], 33, 0.1);
    const projW = randn([D, D], 34, 0.2);
    const projB = randn([D], 35, 0.1);
    const params = (a: tf.Tensor[]) => ({
      qkvW: a[1] as tf.Tensor2D,
      qkvB: a[2] as tf.Tensor1D,
      projW: a[3] as tf.Tensor2D,
      projB: a[4] as tf.Tensor1D,
    });
    checkFwdBwd(
      (...a) => attentionFirstToken(a[0] as tf.Tensor2D, params(a), B, T, H),
      (...a) => firstRows(attention(a[0] as tf.Tensor2D, params(a), B, T, H, null), B, T),
      [x, qkvW, qkvB, projW, projB],
      36,
    );
    tf.dispose([x, qkvW, qkvB, projW, projB]);
  });

  it('withoutWeightGrads / inputGrad: same input gradient, zero weight gradients', () => {
    tf.tidy(() => {
      const x = randn([64, 32], 20) as tf.Tensor2D;
      const w = randn([32, 16], 21, 0.3) as tf.Tensor2D;
      const b = randn([16], 22) as tf.Tensor1D;
      const g = tf.ones([32]) as tf.Tensor1D;
      const z = tf.zeros([32]) as tf.Tensor1D;
      const f = (xi: tf.Tensor2D, wi: tf.Tensor2D) => tf.sum(gelu(linear(layerNorm(xi, g, z), wi, b))) as tf.Scalar;
      const [gx, gw] = tf.grads((a: tf.Tensor, c: tf.Tensor) => f(a as tf.Tensor2D, c as tf.Tensor2D))([x, w]);
      const [gx2, gw2] = withoutWeightGrads(() =>
        tf.grads((a: tf.Tensor, c: tf.Tensor) => f(a as tf.Tensor2D, c as tf.Tensor2D))([x, w]),
      );
      expect(compare(gx2, gx).maxAbs).toBe(0);
      expect(tf.max(tf.abs(gw)).dataSync()[0]).toBeGreaterThan(0);
      expect(tf.max(tf.abs(gw2)).dataSync()[0]).toBe(0);
      const { value, grad } = inputGrad((xi: tf.Tensor2D) => f(xi, w), x);
      expect(compare(grad, gx).maxAbs).toBe(0);
      expect(value.rank).toBe(0);
    });
  });
});
