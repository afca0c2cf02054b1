import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { opCacheTensorCount } from '../../src/engine/ops.js';
import { conv3x3Stride2, createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { modelConfigFor } from '../../src/model/presets.js';
import { countParameters } from '../../src/model/presets.js';
import type { DualEncoder } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';

const VOCAB = 300;
const B = 6;
const L = 32;

function makeInputs(seed: number) {
  const rng = new Rng(seed);
  const px = Float32Array.from({ length: B * 32 * 32 * 3 }, () => rng.next());
  const ids = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    const len = 3 + rng.int(20);
    ids[b * L] = 1;
    for (let j = 1; j < len - 1; j++) ids[b * L + j] = 3 + rng.int(VOCAB - 3);
    ids[b * L + len - 1] = 2;
  }
  return { px, ids };
}

/** simple symmetric InfoNCE with the model's logit scale */
function infoNce(m: DualEncoder, x: tf.Tensor4D, ids: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const zi = m.imageTower(x);
    const zt = m.textTower(ids);
    const logits = tf.mul(tf.matMul(zi, zt, false, true), m.logitScale());
    const eye = tf.oneHot(tf.range(0, zi.shape[0], 1, 'int32'), zi.shape[0]);
    const a = tf.losses.softmaxCrossEntropy(eye, logits);
    const b = tf.losses.softmaxCrossEntropy(eye, tf.transpose(logits));
    return tf.mul(tf.add(a, b), 0.5) as tf.Scalar;
  });
}

interface Snapshot {
  loss: number;
  zi: Float32Array;
  zt: Float32Array;
  grads: Map<string, Float32Array>;
}

async function runOn(backend: 'cpu' | 'wasm', stem: 'linear' | 'conv'): Promise<Snapshot> {
  await initBackend(backend);
  const { px, ids } = makeInputs(5);
  const config = modelConfigFromPreset('tiny', VOCAB);
  config.image = { ...config.image, stem };
  const m = createDualEncoder(config, 42);
  const x = tf.tensor4d(px, [B, 32, 32, 3]);
  const idsT = tf.tensor2d(ids, [B, L], 'int32');
  const names = [...m.variables.keys()];
  const { value, grads } = tf.variableGrads(() => infoNce(m, x, idsT), [...m.variables.values()]);
  const snap: Snapshot = {
    loss: value.dataSync()[0],
    zi: tf.tidy(() => m.imageTower(x).dataSync() as Float32Array),
    zt: tf.tidy(() => m.textTower(idsT).dataSync() as Float32Array),
    grads: new Map(),
  };
  const vars = [...m.variables.values()];
  names.forEach((n, i) => snap.grads.set(n, Float32Array.from(grads[vars[i].name].dataSync())));
  tf.dispose([value, ...Object.values(grads), x, idsT]);
  m.dispose();
  return snap;
}

/** float64 relative L2 error */
function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num) / (Math.sqrt(den) + 1e-30);
}

describe('dual encoder', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(async () => {
    await initBackend('wasm');
  });

  it('builds the tiny preset with stable names and the documented parameter count', () => {
    const c = modelConfigFromPreset('tiny', VOCAB);
    expect(c.image).toEqual({ size: 32, patch: 8, width: 128, depth: 4, heads: 4, mlpRatio: 4 });
    expect(c.text).toMatchObject({ width: 128, depth: 2, heads: 4, maxLen: 32, vocabSize: VOCAB });
    expect(c.embedDim).toBe(128);
    expect(c.initLogitScale).toBeCloseTo(Math.log(1 / 0.07), 10);
    const m = createDualEncoder(c, 1);
    const names = [...m.variables.keys()];
    expect(names).toContain('image.blocks.0.attn.qkv.w');
    expect(names).toContain('image.blocks.3.mlp.fc2.b');
    expect(names).toContain('text.blocks.1.ln2.g');
    expect(names).toContain('text.tok');
    expect(names).toContain('logitScale');
    expect(m.variables.get('image.blocks.0.attn.qkv.w')!.shape).toEqual([128, 384]);
    expect(m.variables.get('text.tok')!.shape).toEqual([VOCAB, 128]);
    let total = 0;
    for (const v of m.variables.values()) total += v.size;
    expect(total).toBe(countParameters(c));
    // two encoders can coexist (tf variable names are unique per instance)
    const m2 = createDualEncoder(c, 1);
    expect([...m2.variables.keys()]).toEqual(names);
    m.dispose();
    m2.dispose();
  });

  it('presets small and base have the documented shapes', () => {
    const s = modelConfigFromPreset('small', 1000);
    expect(s.image).toMatchObject({ size: 64, patch: 8, width: 256, depth: 6 });
    expect(s.text).toMatchObject({ width: 256, depth: 4 });
    expect(s.embedDim).toBe(256);
    const b = modelConfigFromPreset('base', 1000);
    expect(b.image).toMatchObject({ size: 224, patch: 16, width: 512, depth: 12 });
    expect(b.text).toMatchObject({ width: 512, depth: 12, maxLen: 64 });
    expect(b.embedDim).toBe(512);
    // @ts-expect-error deliberately wrong
    expect(() => modelConfigFromPreset('huge', 10)).toThrow(/Unknown model preset/);
  });

  it('same seed -> bit-identical weights; different seed -> different weights', () => {
    const c = modelConfigFromPreset('tiny', VOCAB);
    const a = createDualEncoder(c, 7);
    const b = createDualEncoder(c, 7);
    const d = createDualEncoder(c, 8);
    let differs = 0;
    for (const [name, v] of a.variables) {
      const va = v.dataSync();
      const vb = b.variables.get(name)!.dataSync();
      expect(Buffer.from(va.buffer).equals(Buffer.from(vb.buffer)), name).toBe(true);
      const vd = d.variables.get(name)!.dataSync();
      if (!Buffer.from(va.buffer).equals(Buffer.from(vd.buffer))) differs++;
    }
    // every randomly initialised variable differs (constant-initialised ones - biases, LN - do not)
    const random = [...a.variables.keys()].filter((n) => /\.(w|tok|pos|cls)$/.test(n) || n.endsWith('.cls'));
    expect(differs).toBeGreaterThanOrEqual(random.length);
    [a, b, d].forEach((m) => m.dispose());
  });

  it('outputs are L2-normalised [B,E]; logit scale is exp(init) and clamped at 100', () => {
    const m = createDualEncoder(modelConfigFromPreset('tiny', VOCAB), 3);
    const { px, ids } = makeInputs(1);
    tf.tidy(() => {
      const zi = m.imageTower(tf.tensor4d(px, [B, 32, 32, 3]));
      const zt = m.textTower(tf.tensor2d(ids, [B, L], 'int32'));
      expect(zi.shape).toEqual([B, 128]);
      expect(zt.shape).toEqual([B, 128]);
      for (const z of [zi, zt]) for (const n of tf.norm(z, 'euclidean', 1).dataSync()) expect(n).toBeCloseTo(1, 4);
      expect(m.logitScale().dataSync()[0]).toBeCloseTo(1 / 0.07, 3);
    });
    m.variables.get('logitScale')!.assign(tf.scalar(10));
    expect(tf.tidy(() => m.logitScale().dataSync()[0])).toBeCloseTo(100, 3);
    m.dispose();
  });

  it('textTower == textTowerFromEmbeddings(embedTokens); padding length does not change the embedding', () => {
    const m = createDualEncoder(modelConfigFromPreset('tiny', VOCAB), 4);
    const { ids } = makeInputs(2);
    tf.tidy(() => {
      const idsT = tf.tensor2d(ids, [B, L], 'int32');
      const a = m.textTower(idsT);
      const emb = m.embedTokens(idsT);
      expect(emb.shape).toEqual([B, L, 128]);
      const b = m.textTowerFromEmbeddings(emb, idsT);
      expect(relErr(a.dataSync() as Float32Array, b.dataSync() as Float32Array)).toBe(0);
      // the same captions padded to 24 instead of 32 tokens (all captions here are <= 22 tokens)
      const short = tf.slice(idsT, [0, 0], [B, 24]) as tf.Tensor2D;
      const c = m.textTower(short);
      expect(relErr(c.dataSync() as Float32Array, a.dataSync() as Float32Array)).toBeLessThan(1e-5);
    });
    m.dispose();
  });

  it('rejects wrong input shapes with clear errors', () => {
    const m = createDualEncoder(modelConfigFromPreset('tiny', VOCAB), 4);
    tf.tidy(() => {
      expect(() => m.imageTower(tf.zeros([2, 64, 64, 3]) as tf.Tensor4D)).toThrow(/expected \[B,32,32,3\]/);
      expect(() => m.textTower(tf.zeros([2, 40], 'int32') as tf.Tensor2D)).toThrow(/sequence length 40/);
    });
    m.dispose();
    expect(() => m.logitScale()).toThrow(/disposed/);
  });

  it('tf.memory().numTensors is flat across repeated forward/backward steps', () => {
    const m = createDualEncoder(modelConfigFromPreset('tiny', VOCAB), 5);
    const { px, ids } = makeInputs(3);
    const x = tf.tensor4d(px, [B, 32, 32, 3]);
    const idsT = tf.tensor2d(ids, [B, L], 'int32');
    const vars = [...m.variables.values()];
    const step = () => {
      const { value, grads } = tf.variableGrads(() => infoNce(m, x, idsT), vars);
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
      tf.tidy(() => {
        m.imageTower(x);
        m.textTower(idsT);
      });
    };
    step(); // first step may create cached constants
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
    tf.dispose([x, idsT]);
  });

  it('same seed and inputs -> bit-identical loss and gradients on wasm (two models, repeated steps)', () => {
    const { px, ids } = makeInputs(7);
    const x = tf.tensor4d(px, [B, 32, 32, 3]);
    const idsT = tf.tensor2d(ids, [B, L], 'int32');
    const run = () => {
      const m = createDualEncoder(modelConfigFromPreset('tiny', VOCAB), 11);
      const vars = [...m.variables.values()];
      const out: Buffer[] = [];
      for (let i = 0; i < 2; i++) {
        const { value, grads } = tf.variableGrads(() => infoNce(m, x, idsT), vars);
        out.push(Buffer.from(value.dataSync().buffer.slice(0)));
        for (const v of vars) out.push(Buffer.from(grads[v.name].dataSync().slice().buffer));
        tf.dispose([value, ...Object.values(grads)]);
      }
      m.dispose();
      return out;
    };
    const a = run();
    const b = run();
    expect(a.length).toBe(b.length);
    a.forEach((buf, i) => expect(buf.equals(b[i]), `tensor ${i}`).toBe(true));
    tf.dispose([x, idsT]);
  });

  it('numTensors minus cached op constants is flat across steps whose text lengths vary', () => {
    const m = createDualEncoder(modelConfigFromPreset('tiny', VOCAB), 6);
    const { px, ids } = makeInputs(4);
    const x = tf.tensor4d(px, [B, 32, 32, 3]);
    const full = tf.tensor2d(ids, [B, L], 'int32');
    const vars = [...m.variables.values()];
    const step = (len: number) => {
      const idsT = tf.slice(full, [0, 0], [B, len]) as tf.Tensor2D;
      const { value, grads } = tf.variableGrads(() => infoNce(m, x, idsT), vars);
      value.dataSync();
      tf.dispose([value, ...Object.values(grads), idsT]);
      tf.tidy(() => {
        m.textTower(tf.slice(full, [0, 0], [B, len]) as tf.Tensor2D);
      });
    };
    step(L);
    const before = tf.memory().numTensors - opCacheTensorCount();
    const cachedBefore = opCacheTensorCount();
    for (const len of [24, 17, L, 9, 24]) {
      step(len);
      expect(tf.memory().numTensors - opCacheTensorCount(), `after a step with length ${len}`).toBe(before);
    }
    // new lengths did add cached constants (so the subtraction matters)
    expect(opCacheTensorCount()).toBeGreaterThan(cachedBefore);
    m.dispose();
    tf.dispose([x, full]);
  });

  it.each(['wasm', 'cpu'] as const)('conv stem: im2col 3x3 stride-2 convolution equals tf.conv2d on the 1-padded map, values and input gradient (%s)', async (backend) => {
    await initBackend(backend);
    const rng = new Rng(11);
    const x = tf.tensor4d(Float32Array.from({ length: 2 * 8 * 12 * 5 }, () => rng.next() * 2 - 1), [2, 8, 12, 5]);
    const k = tf.tensor4d(Float32Array.from({ length: 3 * 3 * 5 * 7 }, () => rng.next() - 0.5), [3, 3, 5, 7]);
    const b = tf.tensor1d(Float32Array.from({ length: 7 }, () => rng.next() - 0.5));
    // reference: conv2d + bias + the same GELU (tanh form), computed with stock ops
    const reference = (xx: tf.Tensor4D) => {
      const y = tf.add(tf.conv2d(tf.pad(xx, [[0, 0], [1, 1], [1, 1], [0, 0]]), k, 2, 'valid'), b);
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(y, tf.mul(0.044715, tf.pow(y, 3))));
      return tf.mul(tf.mul(0.5, y), tf.add(1, tf.tanh(inner))) as tf.Tensor4D;
    };
    const w2 = tf.reshape(k, [45, 7]) as tf.Tensor2D; // rows (dy, dx, channel) = the im2col tap order
    const ours = conv3x3Stride2(x, w2, b);
    const ref = reference(x);
    expect(ours.shape).toEqual([2, 4, 6, 7]);
    expect(relErr(ours.dataSync() as Float32Array, ref.dataSync() as Float32Array)).toBeLessThan(1e-5);
    const probe = tf.randomNormal([2, 4, 6, 7], 0, 1, 'float32', 3);
    const gOurs = tf.grad((xx) => tf.sum(tf.mul(conv3x3Stride2(xx as tf.Tensor4D, w2, b), probe)))(x);
    const gRef = tf.grad((xx) => tf.sum(tf.mul(reference(xx as tf.Tensor4D), probe)))(x);
    expect(relErr(gOurs.dataSync() as Float32Array, gRef.dataSync() as Float32Array)).toBeLessThan(1e-4);
    tf.dispose([x, k, b, w2, ours, ref, probe, gOurs, gRef]);
  });

  it('rejects a conv stem whose patch is not a multiple of 4', () => {
    const config = modelConfigFromPreset('tiny', VOCAB);
    config.image = { ...config.image, patch: 2, stem: 'conv' };
    expect(() => createDualEncoder(config, 0)).toThrow(/image.stem 'conv' needs a patch that is a multiple of 4/);
  });

  it('modelConfigFor applies --stem/--image-size/--patch on top of the preset and validates the result', () => {
    const c = modelConfigFor('tiny', VOCAB, { stem: 'conv', imageSize: 64, patch: 16 });
    expect(c.image).toMatchObject({ size: 64, patch: 16, stem: 'conv', width: 128, depth: 4 });
    expect(modelConfigFor('tiny', VOCAB).image).toEqual(modelConfigFromPreset('tiny', VOCAB).image);
    const m = createDualEncoder(c, 0);
    const out = tf.tidy(() => m.imageTower(tf.zeros([2, 64, 64, 3])));
    expect(out.shape).toEqual([2, c.embedDim]);
    tf.dispose(out);
    m.dispose();
    expect(() => modelConfigFor('tiny', VOCAB, { imageSize: 60, patch: 16 })).toThrow(/image.size 60 is not a multiple of patch 16/);
    expect(() => modelConfigFor('tiny', VOCAB, { stem: 'conv', patch: 6, imageSize: 36 })).toThrow(/multiple of 4/);
  });

  it.each(['linear', 'conv'] as const)('wasm loss, embeddings and gradients of every variable match the cpu backend (%s stem)', async (stem) => {
    const w = await runOn('wasm', stem);
    const c = await runOn('cpu', stem);
    if (stem === 'conv') expect([...c.grads.keys()].filter((n) => n.startsWith('image.stem.'))).toHaveLength(4);
    // Tolerances (relative L2, computed in float64): float32 everywhere, different summation orders
    // (XNNPACK vs the cpu backend's loops); observed gradient errors are ~1e-6 (max ~2e-6), bound 1e-4.
    expect(Math.abs(w.loss - c.loss)).toBeLessThan(1e-4 * Math.abs(c.loss));
    expect(relErr(w.zi, c.zi)).toBeLessThan(1e-4);
    expect(relErr(w.zt, c.zt)).toBeLessThan(1e-4);
    expect([...w.grads.keys()]).toEqual([...c.grads.keys()]);
    const worst: [string, number][] = [];
    for (const [name, gc] of c.grads) {
      const gw = w.grads.get(name)!;
      const e = relErr(gw, gc);
      worst.push([name, e]);
      expect(e, `gradient of ${name}`).toBeLessThan(1e-4);
    }
    worst.sort((a, b) => b[1] - a[1]);
    console.log('largest gradient rel. errors wasm vs cpu:', worst.slice(0, 3).map(([n, e]) => `${n} ${e.toExponential(2)}`).join(', '));
  });
});
