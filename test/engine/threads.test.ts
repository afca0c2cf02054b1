import { describe, expect, it } from 'vitest';
import * as tf from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';

// Own file: backends are process-global and the threaded wasm build can only be chosen before wasm initialises.
describe('wasm with threads (experimental)', () => {
  it('either runs XNNPACK threads or falls back to one thread, saying which; results stay correct', async () => {
    const info = await initBackend('wasm', { threads: 2 });
    expect(info.name).toBe('wasm');
    expect(info.reason).toMatch(/threads|single-threaded/);
    const a = tf.tensor2d(Array.from({ length: 256 * 64 }, (_, i) => Math.sin(i)), [256, 64]);
    const b = tf.tensor2d(Array.from({ length: 64 * 96 }, (_, i) => Math.cos(i)), [64, 96]);
    const got = tf.matMul(a, b).dataSync();
    const av = a.dataSync();
    const bv = b.dataSync();
    let maxErr = 0;
    for (const [i, j] of [
      [0, 0],
      [17, 33],
      [255, 95],
    ]) {
      let s = 0;
      for (let k = 0; k < 64; k++) s += av[i * 64 + k] * bv[k * 96 + j];
      maxErr = Math.max(maxErr, Math.abs(s - got[i * 96 + j]));
    }
    expect(maxErr).toBeLessThan(1e-4);
    tf.dispose([a, b]);
  });
});
