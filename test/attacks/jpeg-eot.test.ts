/** Expectation over JPEG encoding (attacks/transformations/jpeg.ts): round trip, straight-through gradient, PGD wiring. */
import { beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { initBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { attackByName } from '../../src/attacks/index.js';
import { eotQualities, jpegEot, jpegRoundTripFloat } from '../../src/attacks/transformations/jpeg.js';
import { createDualEncoder, modelConfigFromPreset } from '../../src/model/dual-encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import { Rng } from '../../src/util/rng.js';
import { CAPTIONS } from './helpers.js';

const S = 32;
/** smooth test image: 4x4 blocks */
function image(seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(S * S * 3);
  for (let by = 0; by < S / 4; by++)
    for (let bx = 0; bx < S / 4; bx++)
      for (let c = 0; c < 3; c++) {
        const v = Math.round(rng.next() * 255) / 255;
        for (let y = 0; y < 4; y++) for (let xx = 0; xx < 4; xx++) x[((by * 4 + y) * S + bx * 4 + xx) * 3 + c] = v;
      }
  return x;
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('JPEG round trip for EOT', () => {
  it('is lossy but close, deterministic, and near what libjpeg (sharp, 4:4:4) decodes at the same quality', async () => {
    const x = image(1);
    const a = jpegRoundTripFloat(x, S, 85);
    expect(Buffer.from(jpegRoundTripFloat(x, S, 85).buffer).equals(Buffer.from(a.buffer))).toBe(true);
    let diff = 0;
    let mean = 0;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(a[i] - x[i]));
      mean += Math.abs(a[i] - x[i]) / x.length;
    }
    expect(diff).toBeGreaterThan(0);
    expect(mean).toBeLessThan(0.06);
    const u8 = Uint8Array.from(x, (v) => Math.round(v * 255));
    const viaSharp = await sharp(Buffer.from(u8), { raw: { width: S, height: S, channels: 3 } }).jpeg({ quality: 85, chromaSubsampling: '4:4:4' }).toBuffer();
    const { data } = await sharp(viaSharp).raw().toBuffer({ resolveWithObject: true });
    let gap = 0;
    for (let i = 0; i < x.length; i++) gap += Math.abs(data[i] / 255 - a[i]) / x.length;
    // two encoders, same tables, 4:4:4: far closer to each other than either is to the original (measured 0.0024 vs 0.020)
    expect(gap).toBeLessThan(mean / 4);
  });

  it('qualities around the target, clamped; invalid qualities refused', () => {
    expect(eotQualities(85)).toEqual([75, 80, 85, 90]);
    expect(eotQualities(98)).toEqual([88, 93, 98, 100]);
    expect(() => eotQualities(0)).toThrow(/1\.\.100/);
  });

  it('forward = the round trips (one replica per quality), backward = the identity (BPDA)', () => {
    const t = jpegEot(85);
    expect(t.replicas).toBe(4);
    const x = tf.tensor4d(Float32Array.from([...image(2), ...image(3)]), [2, S, S, 3]);
    const w = tf.randomNormal([8, S, S, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const y = t.apply(x, []);
    expect(y.shape).toEqual([8, S, S, 3]);
    const rt = jpegRoundTripFloat(image(3), S, 75);
    const row1 = y.slice([1, 0, 0, 0], [1, S, S, 3]).dataSync();
    expect(Array.from(row1).every((v, i) => Math.abs(v - rt[i]) < 1e-6)).toBe(true);
    const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(t.apply(xx as tf.Tensor4D, []), w)))(x);
    // d/dx sum(T(x) * w) with T' = I, summed over the 4 replicas of each image
    const want = tf.sum(tf.reshape(w, [4, 2, S, S, 3]), 0);
    const d = tf.max(tf.abs(tf.sub(g, want))).dataSync()[0];
    expect(d).toBeLessThan(1e-5);
    tf.dispose([x, w, y, g, want]);
  });

  it('PGD with eotJpegQuality runs within the budget and records the expectation in its config', async () => {
    const tokenizer = buildTokenizer(CAPTIONS, { maxLen: 16 });
    const encoder = createDualEncoder(modelConfigFromPreset('tiny', tokenizer.vocabSize), 0);
    try {
      const images = Float32Array.from([...image(4), ...image(5)]);
      const batch = { images, size: S, captions: CAPTIONS.slice(0, 2), captionToImage: [0, 1] };
      const before = tf.memory().numTensors;
      const r = await attackByName('pgd', { eps: 8 / 255, stepSize: 2 / 255, steps: 3, seed: 1, eotJpegQuality: 85 }).run(batch, { encoder, tokenizer });
      expect(tf.memory().numTensors).toBe(before);
      expect(r.config.eot).toBe('jpeg-eot(q=75,80,85,90)');
      expect(r.images!.linf.every((v) => v <= 8 / 255 + 1e-6)).toBe(true);
      expect(r.images!.queries[0]).toBe(4 * 4); // (steps + 1) forwards x 4 replicas
    } finally {
      encoder.dispose();
    }
  });
});
