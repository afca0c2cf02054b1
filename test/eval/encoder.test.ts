import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { computeRecall } from '../../src/eval/recall.js';
import { Encoder, similarityMatrix } from '../../src/model/encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { DualEncoder } from '../../src/model/types.js';
import { createFakeDualEncoder, fakeConfig } from './fake-model.js';

const captions = ['a red circle', 'a blue square', 'a green star', 'two yellow stars', 'a big red square'];
const tokenizer = buildTokenizer(captions, { maxLen: 10 });
let model: DualEncoder;
let enc: Encoder;

beforeAll(async () => {
  await initBackend('cpu');
  model = createFakeDualEncoder(fakeConfig(tokenizer.vocabSize, 10, 4, 8), 1);
  enc = new Encoder(model, tokenizer, { id: 'mf-test' });
});
afterAll(() => model?.dispose());

function pixels(n: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n * 48 }, (_, i) => (i * 31 + seed * 17 + 5) % 256);
}

describe('Encoder', () => {
  it('reports dim and version', () => {
    expect(enc.dim).toBe(8);
    expect(enc.imageSize).toBe(4);
    expect(enc.version).toBe('mf-test');
    expect(new Encoder(model, tokenizer).version).toBe('unversioned');
  });

  it('embeds texts: unit rows, independent of batch size, rows match the matrix', async () => {
    const texts = [...captions, '🙂 unknown words', ''];
    const m = await enc.embedTextsMatrix(texts);
    expect(m.length).toBe(texts.length * 8);
    for (let i = 0; i < texts.length; i++) {
      const row = m.subarray(i * 8, (i + 1) * 8);
      expect(Math.hypot(...row)).toBeCloseTo(1, 5);
    }
    const m2 = await enc.embedTextsMatrix(texts, 2);
    for (let k = 0; k < m.length; k++) expect(m2[k]).toBeCloseTo(m[k], 5);
    const rows = await enc.embedTexts(texts, 3);
    expect(rows.length).toBe(texts.length);
    rows.forEach((r, i) => {
      expect(r.length).toBe(8);
      for (let k = 0; k < 8; k++) expect(r[k]).toBeCloseTo(m[i * 8 + k], 5);
    });
    expect(await enc.embedTexts([])).toEqual([]);
  });

  it('embeds images from uint8 (÷255) and from float [0,1] identically', async () => {
    const u8 = pixels(5);
    const f32 = Float32Array.from(u8, (x) => x / 255);
    const a = await enc.embedImagesMatrix(u8, 5, 2);
    const b = await enc.embedImagesMatrix(f32, 5);
    for (let k = 0; k < a.length; k++) expect(a[k]).toBeCloseTo(b[k], 5);
    for (const r of await enc.embedImages(u8, 5)) expect(Math.hypot(...r)).toBeCloseTo(1, 5);
    await expect(enc.embedImages(u8, 4)).rejects.toThrow(/expected 4 x 4 x 4 x 3 = 192 values, got 240/);
    await expect(enc.embedImages(u8, 5, 0)).rejects.toThrow(/batch/);
  });

  it('leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    await enc.embedTexts(captions, 2);
    await enc.embedImages(pixels(7), 7, 3);
    await expect(enc.embedImages(pixels(1), 2)).rejects.toThrow();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('feeds recall through similarityMatrix', async () => {
    const img = await enc.embedImagesMatrix(pixels(3), 3);
    const txt = await enc.embedTextsMatrix(captions.slice(0, 3));
    const sims = similarityMatrix(img, txt, 8);
    expect(sims.length).toBe(9);
    let dot = 0;
    for (let k = 0; k < 8; k++) dot += img[8 + k] * txt[16 + k];
    expect(sims[1 * 3 + 2]).toBeCloseTo(dot, 6);
    const r = computeRecall(sims, 3, 3, { captionToImage: [0, 1, 2], imageToCaptions: [[0], [1], [2]] });
    expect(r.tr.recall[10]).toBe(100);
  });
});
