/**
 * The CLIP family of the dual encoder (config.family 'clip'): its activations, causal text tower with EOT pooling,
 * ln_pre, and that the family is the same DualEncoder as Manyfold's own (parameter count, gradients, no leaks).
 * Parity with an independent reference implementation on imported checkpoints is test/model/clip-parity.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { geluExact, inputGrad, quickGelu } from '../../src/engine/ops.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import { countParameters, validateModelConfig } from '../../src/model/presets.js';
import type { DualEncoder, ModelConfig } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';

const V = 60;
const EOT = V - 1;
const SOT = V - 2;
const C = 16;

function clipConfig(over: Partial<ModelConfig['clip']> = {}): ModelConfig {
  return {
    preset: 'clip',
    family: 'clip',
    embedDim: 24,
    image: { size: 16, patch: 4, width: 32, depth: 2, heads: 4, mlpRatio: 4 },
    text: { width: 32, depth: 2, heads: 4, mlpRatio: 4, maxLen: C, vocabSize: V },
    initLogitScale: Math.log(100),
    clip: {
      activation: 'quick_gelu',
      textPooling: 'argmax',
      eosTokenId: EOT,
      pixelMean: [0.5, 0.4, 0.3],
      pixelStd: [0.2, 0.25, 0.3],
      lnEps: 1e-5,
      resizeShortestEdge: 16,
      ...over,
    },
  };
}

/** erf by its Maclaurin series (|x| < 3) or continued fraction, in float64: the test's own exact reference */
function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = 0;
    let term = ax;
    for (let n = 0; n < 200; n++) {
      sum += term / (2 * n + 1);
      term *= (-ax * ax) / (n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz), accurate for ax >= 3
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f);
}

function seq(...tokens: number[]): number[] {
  return [SOT, ...tokens, EOT];
}

function padTo(rows: number[][], len: number): tf.Tensor2D {
  const out = new Int32Array(rows.length * len);
  rows.forEach((r, i) => out.set(r, i * len));
  return tf.tensor2d(out, [rows.length, len], 'int32');
}

let model: DualEncoder;

beforeAll(async () => {
  await initBackend('wasm');
  model = createDualEncoder(clipConfig(), 7);
});
afterAll(() => model?.dispose());

describe('activations', () => {
  const xs = Array.from({ length: 161 }, (_, i) => -8 + i * 0.1);
  it('geluExact is the erf form: within 1e-6 of x * Phi(x) computed in float64, not the tanh form', () => {
    const y = tf.tidy(() => geluExact(tf.tensor1d(xs)).dataSync());
    let maxErr = 0;
    let maxTanhGap = 0;
    xs.forEach((x, i) => {
      const exact = 0.5 * x * (1 + erf64(x / Math.SQRT2));
      const tanhForm = 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
      maxErr = Math.max(maxErr, Math.abs(y[i] - exact));
      maxTanhGap = Math.max(maxTanhGap, Math.abs(tanhForm - exact));
    });
    expect(maxErr).toBeLessThan(1e-6);
    expect(maxTanhGap).toBeGreaterThan(1e-4); // the approximation this replaces is measurably different
  });

  it('geluExact and quickGelu gradients equal central differences of the float64 functions', () => {
    const f64 = {
      gelu: (x: number) => 0.5 * x * (1 + erf64(x / Math.SQRT2)),
      quick: (x: number) => x / (1 + Math.exp(-1.702 * x)),
    };
    for (const [name, op, ref] of [
      ['gelu', geluExact, f64.gelu],
      ['quick', quickGelu, f64.quick],
    ] as const) {
      const g = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(op(x)))(tf.tensor1d(xs)).dataSync());
      xs.forEach((x, i) => {
        const h = 1e-5;
        const fd = (ref(x + h) - ref(x - h)) / (2 * h);
        expect(Math.abs(g[i] - fd), `${name} at ${x}`).toBeLessThan(2e-5);
      });
    }
  });

  it('quickGelu is x * sigmoid(1.702 x)', () => {
    const y = tf.tidy(() => quickGelu(tf.tensor1d(xs)).dataSync());
    xs.forEach((x, i) => expect(y[i]).toBeCloseTo(x / (1 + Math.exp(-1.702 * x)), 6));
  });
});

describe('CLIP family config', () => {
  it('countParameters matches the variables built (no patch bias, ln_pre present)', () => {
    const c = clipConfig();
    let n = 0;
    for (const v of model.variables.values()) n += v.size;
    expect(countParameters(c)).toBe(n);
    expect(model.variables.has('image.patch.b')).toBe(false);
    expect(model.variables.has('image.lnpre.g')).toBe(true);
  });

  it('rejects inconsistent CLIP sections with the field named', () => {
    expect(() => validateModelConfig({ ...clipConfig(), clip: undefined })).toThrow(/needs a 'clip' section/);
    expect(() => validateModelConfig(clipConfig({ eosTokenId: V }))).toThrow(/clip.eosTokenId/);
    expect(() => validateModelConfig(clipConfig({ resizeShortestEdge: 8 }))).toThrow(/resizeShortestEdge/);
    expect(() => validateModelConfig(clipConfig({ activation: 'relu' as never }))).toThrow(/clip.activation/);
  });
});

describe('CLIP text tower (causal, EOT pooling)', () => {
  it('tokens after EOT and the padded length change nothing (causal attention)', () => {
    const a = seq(3, 4, 5);
    const [short, long, garbage] = tf.tidy(() => [
      model.textTower(padTo([a], a.length)).dataSync(),
      model.textTower(padTo([a], C)).dataSync(),
      model.textTower(padTo([[...a, 7, 8, 9, 10]], C)).dataSync(),
    ]);
    for (let i = 0; i < short.length; i++) {
      expect(long[i]).toBeCloseTo(short[i], 5);
      expect(garbage[i]).toBeCloseTo(short[i], 5);
    }
  });

  it('id 0 is an ordinary token, not padding', () => {
    const [with0, without] = tf.tidy(() => [model.textTower(padTo([seq(3, 0, 5)], C)).dataSync(), model.textTower(padTo([seq(3, 5)], C)).dataSync()]);
    let diff = 0;
    for (let i = 0; i < with0.length; i++) diff = Math.max(diff, Math.abs(with0[i] - without[i]));
    expect(diff).toBeGreaterThan(1e-3);
  });

  it("'argmax' pools the first occurrence of the largest id; 'eos' the first eosTokenId", () => {
    const eosModel = createDualEncoder(clipConfig({ textPooling: 'eos', eosTokenId: 9 }), 7);
    try {
      // the text embedding of a row equals the embedding of the row cut right after the pooled position
      const twoEots = [SOT, 3, EOT, 4, EOT];
      const [full, cut] = tf.tidy(() => [model.textTower(padTo([twoEots], C)).dataSync(), model.textTower(padTo([twoEots.slice(0, 3)], C)).dataSync()]);
      for (let i = 0; i < full.length; i++) expect(full[i]).toBeCloseTo(cut[i], 5);
      // eos rule with id 9: pooled at the first 9, even though EOT (largest id) comes later
      const row = [SOT, 3, 9, 4, 9, EOT];
      const [e1, e2, e3] = tf.tidy(() => [
        eosModel.textTower(padTo([row], C)).dataSync(),
        eosModel.textTower(padTo([row.slice(0, 3)], C)).dataSync(),
        eosModel.textTower(padTo([row.slice(0, 5)], C)).dataSync(),
      ]);
      for (let i = 0; i < e1.length; i++) expect(e1[i]).toBeCloseTo(e2[i], 5);
      let d = 0;
      for (let i = 0; i < e1.length; i++) d = Math.max(d, Math.abs(e1[i] - e3[i]));
      expect(d).toBeLessThan(1e-5); // cutting after the second 9 keeps the first 9 in place too
    } finally {
      eosModel.dispose();
    }
  });
});

/** CLIP's text tower written plainly (one sequence at a time, full causal attention in every block, tf.matMul): an
 *  in-test reference for the fast path (batched, last block on the pooled row only) */
function plainClipText(m: DualEncoder, row: number[], pool: number): Float32Array {
  const c = m.config;
  const v = (n: string) => m.variables.get(n)!;
  const act = (x: tf.Tensor) => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)));
  const ln = (x: tf.Tensor, p: string) => {
    const mu = tf.mean(x, -1, true);
    const va = tf.mean(tf.square(tf.sub(x, mu)), -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mu), tf.sqrt(tf.add(va, 1e-5))), v(`${p}.g`)), v(`${p}.b`));
  };
  return tf.tidy(() => {
    const L = row.length;
    const W = c.text.width;
    const H = c.text.heads;
    const dh = W / H;
    let h: tf.Tensor = tf.add(tf.gather(v('text.tok'), tf.tensor1d(row, 'int32')), tf.slice(v('text.pos'), [0, 0], [L, W]));
    const causal = tf.tensor2d(Array.from({ length: L * L }, (_, k) => (k % L > Math.floor(k / L) ? -1e9 : 0)), [L, L]);
    for (let i = 0; i < c.text.depth; i++) {
      const p = `text.blocks.${i}`;
      const qkv = tf.add(tf.matMul(ln(h, `${p}.ln1`), v(`${p}.attn.qkv.w`)), v(`${p}.attn.qkv.b`));
      const heads: tf.Tensor[] = [];
      for (let k = 0; k < H; k++) {
        const q = tf.slice(qkv, [0, k * dh], [L, dh]);
        const kk = tf.slice(qkv, [0, W + k * dh], [L, dh]);
        const vv = tf.slice(qkv, [0, 2 * W + k * dh], [L, dh]);
        const pr = tf.softmax(tf.add(tf.div(tf.matMul(q, kk, false, true), Math.sqrt(dh)), causal));
        heads.push(tf.matMul(pr, vv));
      }
      h = tf.add(h, tf.add(tf.matMul(tf.concat(heads, 1), v(`${p}.attn.proj.w`)), v(`${p}.attn.proj.b`)));
      const f = act(tf.add(tf.matMul(ln(h, `${p}.ln2`), v(`${p}.mlp.fc1.w`)), v(`${p}.mlp.fc1.b`)));
      h = tf.add(h, tf.add(tf.matMul(f, v(`${p}.mlp.fc2.w`)), v(`${p}.mlp.fc2.b`)));
    }
    const z = tf.matMul(ln(tf.slice(h, [pool, 0], [1, W]), 'text.ln'), v('text.proj.w'));
    return tf.div(z, tf.norm(z)).dataSync() as Float32Array;
  });
}

describe('CLIP text tower against a plain implementation', () => {
  it('the batched fast path (last block on the EOT row only) equals full causal attention per sequence', () => {
    const rows = [seq(3, 4, 5), seq(6), [SOT, 0, 7, EOT, 8, EOT], seq(9, 10, 11, 12, 13, 14)];
    const fast = tf.tidy(() => model.textTower(padTo(rows, 10)).dataSync());
    const E = model.config.embedDim;
    rows.forEach((r, i) => {
      const ref = plainClipText(model, r, r.indexOf(EOT));
      for (let k = 0; k < E; k++) expect(fast[i * E + k]).toBeCloseTo(ref[k], 5);
    });
  });
});

describe('CLIP image tower', () => {
  it('normalises with the config mean / std inside the forward pass, and pixel gradients are finite and leak-free', () => {
    const rng = new Rng(3);
    const px = Float32Array.from({ length: 2 * 16 * 16 * 3 }, () => rng.next());
    const before = tf.memory().numTensors;
    for (let step = 0; step < 3; step++) {
      const g = tf.tidy(() => {
        const x = tf.tensor4d(px, [2, 16, 16, 3]);
        const target = tf.tidy(() => model.textTower(padTo([seq(3, 4), seq(5, 6)], 4)));
        const { value, grad } = inputGrad((xi: tf.Tensor4D) => tf.sum(tf.mul(model.imageTower(xi), target)) as tf.Scalar, x);
        expect(Number.isFinite(value.dataSync()[0])).toBe(true);
        return grad.abs().max().dataSync()[0];
      });
      expect(Number.isFinite(g) && g > 0).toBe(true);
    }
    expect(tf.memory().numTensors).toBe(before);
    // the model's own statistics: a constant image at the mean normalises to zero before the patch embedding
    const other = createDualEncoder({ ...clipConfig(), clip: { ...clipConfig().clip!, pixelMean: [0.1, 0.1, 0.1] } }, 7);
    try {
      const [a, b] = tf.tidy(() => {
        const x = tf.tensor4d(px, [2, 16, 16, 3]);
        return [model.imageTower(x).dataSync(), other.imageTower(x).dataSync()];
      });
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
      expect(d).toBeGreaterThan(1e-3);
    } finally {
      other.dispose();
    }
  });

  it("init 'zeros' builds the same variables without random draws", () => {
    const z = createDualEncoder(clipConfig(), 7, 'zeros');
    try {
      expect([...z.variables.keys()]).toEqual([...model.variables.keys()]);
      expect(tf.tidy(() => tf.abs(z.variables.get('image.patch.w')!).max().dataSync()[0])).toBe(0);
      expect(tf.tidy(() => z.variables.get('image.lnpre.g')!.min().dataSync()[0])).toBe(1);
    } finally {
      z.dispose();
    }
  });
});
