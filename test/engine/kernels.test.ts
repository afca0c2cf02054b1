import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { registeredKernels } from '../../src/engine/kernels.js';
import { compare } from './helpers.js';

/** run f on the given backend, returning plain arrays (tensors are disposed) */
async function on(backend: 'cpu' | 'wasm', f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await initBackend(backend);
  return tf.tidy(() => {
    const r = f();
    return (Array.isArray(r) ? r : [r]).map((t) => Float32Array.from(t.dataSync()));
  });
}

describe('kernels registered for wasm', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('registers UnsortedSegmentSum and Conv2DBackpropFilter (and only kernels wasm lacked)', () => {
    const names = registeredKernels('wasm');
    expect(names).toContain('UnsortedSegmentSum');
    expect(names).toContain('Conv2DBackpropFilter');
    expect(names).toContain('DepthwiseConv2dNativeBackpropFilter');
    expect(names).not.toContain('BatchMatMul');
  });

  it('UnsortedSegmentSum matches cpu (incl. out-of-range ids dropped, repeated ids summed)', async () => {
    const mk = () => {
      const x = tf.tensor2d(Array.from({ length: 7 * 5 }, (_, i) => Math.sin(i) * 3), [7, 5]);
      const ids = tf.tensor1d([3, 0, 3, 9, -1, 2, 3], 'int32');
      return tf.unsortedSegmentSum(x, ids, 6);
    };
    const [w] = await on('wasm', mk);
    const [c] = await on('cpu', mk);
    expect(compare(w, c).maxAbs).toBeLessThan(1e-6);
    expect(w.length).toBe(6 * 5);
  });

  it('UnsortedSegmentSum with 3-D x (inner dims [3,4]) matches cpu', async () => {
    const mk = () => {
      const x = tf.tensor3d(Array.from({ length: 6 * 3 * 4 }, (_, i) => i * 0.5 - 3), [6, 3, 4]);
      const ids = tf.tensor1d([1, 0, 1, 4, 4, 2], 'int32');
      return tf.unsortedSegmentSum(x, ids, 5);
    };
    const [w] = await on('wasm', mk);
    const [c] = await on('cpu', mk);
    expect(compare(w, c).maxAbs).toBeLessThan(1e-6);
  });

  it('gather gradient (token-embedding training) matches cpu', async () => {
    const mk = () => {
      const table = tf.tensor2d(Array.from({ length: 50 * 8 }, (_, i) => Math.cos(i)), [50, 8]);
      const ids = tf.tensor1d([1, 5, 5, 0, 49, 7, 5, 1], 'int32');
      const w = tf.tensor2d(Array.from({ length: 8 * 8 }, (_, i) => Math.sin(i * 0.3)), [8, 8]);
      return tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.matMul(tf.gather(t, ids) as tf.Tensor2D, w))))(table);
    };
    const [w] = await on('wasm', mk);
    const [c] = await on('cpu', mk);
    const r = compare(w, c);
    expect(r.rel).toBeLessThan(1e-5);
  });

  it('Conv2DBackpropFilter (conv2d weight gradient) matches cpu', async () => {
    const mk = () => {
      const x = tf.tensor4d(Array.from({ length: 2 * 9 * 9 * 3 }, (_, i) => Math.sin(i * 0.1)), [2, 9, 9, 3]);
      const f = tf.tensor4d(Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i * 0.2)), [3, 3, 3, 4]);
      const g = tf.grads((xi: tf.Tensor, fi: tf.Tensor) =>
        tf.sum(tf.square(tf.conv2d(xi as tf.Tensor4D, fi as tf.Tensor4D, [2, 2], 'same'))),
      )([x, f]);
      return g;
    };
    const [wx, wf] = await on('wasm', mk);
    const [cx, cf] = await on('cpu', mk);
    expect(compare(wf, cf).rel).toBeLessThan(1e-5);
    expect(compare(wx, cx).rel).toBeLessThan(1e-5);
  });

  it('clipByValue gradient and Adam/AdamW-style update ops run on wasm and match cpu', async () => {
    const mk = () => {
      const x = tf.tensor1d([-2, -0.5, 0.1, 0.7, 3]);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.clipByValue(v, -1, 1), tf.tensor1d([1, 2, 3, 4, 5]))))(x);
      // one AdamW update by hand: m, v, bias correction, decoupled weight decay
      const m = tf.mul(g, 0.1);
      const v = tf.mul(tf.square(g), 0.001);
      const upd = tf.div(tf.div(m, 0.1), tf.add(tf.sqrt(tf.div(v, 0.001)), 1e-8));
      const p = tf.sub(tf.mul(x, 1 - 1e-3 * 0.05), tf.mul(upd, 1e-3));
      return [g, p];
    };
    const [wg, wp] = await on('wasm', mk);
    const [cg, cp] = await on('cpu', mk);
    expect(Array.from(wg)).toEqual([0, 2, 3, 4, 0]);
    expect(compare(wg, cg).maxAbs).toBe(0);
    expect(compare(wp, cp).maxAbs).toBeLessThan(1e-6);
  });

  it('tf.train.adam minimize runs on wasm (optimizer kernels present)', async () => {
    await initBackend('wasm');
    const v = tf.variable(tf.tensor1d([1, -2, 3]));
    const opt = tf.train.adam(0.1);
    for (let i = 0; i < 3; i++) opt.minimize(() => tf.sum(tf.square(v)) as tf.Scalar);
    const out = Array.from(v.dataSync());
    expect(Math.abs(out[0])).toBeLessThan(1);
    opt.dispose();
    v.dispose();
  });
});

describe('zero-copy Slice on wasm', () => {
  it('matches cpu for contiguous and strided slices of rank 1-4 (and rank 5 via the stock kernel)', async () => {
    const shapes: [number[], number[], number[]][] = [
      [[10], [3], [5]],
      [[6, 7], [2, 0], [3, 7]],
      [[6, 7], [1, 2], [4, 3]],
      [[4, 5, 6], [1, 2, 3], [2, 3, 2]],
      [[3, 4, 5, 6], [1, 0, 2, 1], [2, 4, 2, 5]],
      // trailing dimensions taken whole (copied as one run per leading index)
      [[4, 6, 5, 3], [1, 2, 0, 0], [2, 3, 5, 3]],
      [[5, 12, 7, 4], [0, 4, 0, 0], [5, 4, 7, 4]],
      [[6, 5, 4], [2, 1, 0], [3, 2, 4]],
      [[2, 3, 4, 5, 2], [0, 1, 1, 0, 1], [2, 2, 3, 5, 1]],
    ];
    for (const [shape, begin, size] of shapes) {
      const mk = () => {
        const n = shape.reduce((a, b) => a * b, 1);
        return tf.slice(tf.tensor(Array.from({ length: n }, (_, i) => i * 1.5 - 7), shape), begin, size);
      };
      const [w] = await on('wasm', mk);
      const [c] = await on('cpu', mk);
      expect(Array.from(w), `slice of [${shape}]`).toEqual(Array.from(c));
    }
    await initBackend('wasm');
    expect(registeredKernels('wasm')).toContain('Slice');
  });
});

describe('zero-copy Identity on wasm', () => {
  it('clones share the buffer, survive disposal of the source, and gradients through saved tensors stay right', async () => {
    await initBackend('wasm');
    expect(registeredKernels('wasm')).toContain('Identity');
    const a = tf.tensor1d([1, 2, 3, 4]);
    const c = tf.clone(a);
    a.dispose();
    expect(Array.from(c.dataSync())).toEqual([1, 2, 3, 4]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, x)))(c);
    expect(Array.from(g.dataSync())).toEqual([2, 4, 6, 8]);
    tf.dispose([c, g]);
  });
});

describe('row-copy GatherV2 on wasm', () => {
  it('matches cpu for axis 0 (1-D..3-D tables, 1-D and 2-D indices, int32 tables), other axes via the stock kernel', async () => {
    const cases: [number[], number[], number[], number, 'float32' | 'int32'][] = [
      [[10], [3, 0, 9, 3], [4], 0, 'float32'],
      [[7, 5], [6, 0, 2, 2, 1], [5], 0, 'float32'],
      [[7, 5], [6, 0, 2, 2, 1, 3], [2, 3], 0, 'int32'],
      [[4, 3, 2], [3, 1], [2], 0, 'float32'],
      [[4, 3, 2], [2, 0, 1], [3], 1, 'float32'],
    ];
    for (const [shape, idx, idxShape, axis, dtype] of cases) {
      const mk = () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const x = tf.tensor(Array.from({ length: n }, (_, i) => i * 3 - 11), shape, dtype);
        return tf.gather(x, tf.tensor(idx, idxShape, 'int32'), axis);
      };
      const [w] = await on('wasm', mk);
      const [c] = await on('cpu', mk);
      expect(Array.from(w), `gather [${shape}] axis ${axis}`).toEqual(Array.from(c));
    }
    await initBackend('wasm');
    expect(registeredKernels('wasm')).toContain('GatherV2');
    expect(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], 'int32')))).toThrow(/not in \[0, 2\]/);
  });
});
