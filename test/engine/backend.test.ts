import { describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf.js';
import { activeBackend, initBackend } from '../../src/engine/backend.js';

describe('initBackend', () => {
  it("'tensorflow' throws a clear error when tfjs-node(-gpu) is absent", async () => {
    await expect(initBackend('tensorflow')).rejects.toThrow(/Backend 'tensorflow' is not available/);
    await expect(initBackend('tensorflow')).rejects.toThrow(/tfjs-node-gpu: not installed.*tfjs-node: not installed/);
    await expect(initBackend('tensorflow')).rejects.toThrow(/request backend 'auto'/);
  });

  it("'auto' falls back to wasm and says why", async () => {
    const info = await initBackend('auto');
    expect(info.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.reason).toMatch(/auto: chose wasm because the tensorflow backend is unavailable/);
    expect(info.reason).toMatch(/tfjs-node-gpu/);
    expect(activeBackend()).toEqual(info);
  });

  it('is idempotent: a second call returns the active backend', async () => {
    const a = await initBackend('auto');
    const b = await initBackend('auto');
    const c = await initBackend('wasm');
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it('switches when a different backend is requested explicitly, and back', async () => {
    const cpu = await initBackend('cpu');
    expect(cpu.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const w = await initBackend('wasm');
    expect(w.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    // wasm works after switching back and forth
    const s = tf.tidy(() => tf.sum(tf.matMul(tf.ones([4, 3]), tf.ones([3, 2]))).dataSync()[0]);
    expect(s).toBe(24);
  });

  it('rejects unknown kinds', async () => {
    // @ts-expect-error deliberately wrong
    await expect(initBackend('gpu')).rejects.toThrow(/Unknown backend kind 'gpu'/);
  });

  it('installs chained tensor methods and gradients', async () => {
    await initBackend('wasm');
    const x = tf.tensor1d([1, 2, 3]);
    expect(Array.from(x.mul(2).add(1).dataSync())).toEqual([3, 5, 7]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.div(tf.square(v), 2)))(x);
    expect(Array.from(g.dataSync())).toEqual([1, 2, 3]);
    tf.dispose([x, g]);
  });
});
