import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { attackByName, embedImageRows, embedTextRows, rescaledCopies, type AttackResult } from '../../src/attacks/index.js';
import { Rng } from '../../src/util/rng.js';
import { fixture } from './helpers.js';
import { useCpu } from './setup.js';

beforeAll(useCpu);

const f = fixture({ nImages: 4, size: 8, dim: 16 });
const env = { encoder: f.encoder, tokenizer: f.tokenizer };
const batch = { images: f.images, size: f.size, captions: f.captions, captionToImage: f.captionToImage };
const E = f.encoder.config.embedDim;

/** the multimodal attack objective: mean over pairs of 1 - cos(adversarial image, adversarial caption) */
async function pairDissimilarity(r: AttackResult): Promise<number> {
  const img = await embedImageRows(f.encoder, r.images!.data, f.nImages, f.size);
  const txt = await embedTextRows(f.encoder, f.tokenizer, r.captions?.texts ?? f.captions);
  let s = 0;
  f.captionToImage.forEach((im, c) => {
    let d = 0;
    for (let k = 0; k < E; k++) d += img[im * E + k] * txt[c * E + k];
    s += 1 - d;
  });
  return s / f.captions.length;
}

describe('multimodal attacks', () => {
  it('Co-Attack and SGA reach at least the PGD-alone objective (default budgets)', async () => {
    // objective: mean 1 - cos(adversarial image, adversarial caption); PGD alone keeps the clean captions
    const pgd = await pairDissimilarity(await attackByName('pgd', { seed: 1 }).run(batch, env));
    const co = await attackByName('coattack', { seed: 1 }).run(batch, env);
    const coPaired = await attackByName('coattack', { seed: 1, textObjective: 'paired' }).run(batch, env);
    const sga = await attackByName('sga', { seed: 1 }).run(batch, env);
    expect(await pairDissimilarity(sga)).toBeGreaterThanOrEqual(pgd);
    expect(await pairDissimilarity(coPaired)).toBeGreaterThanOrEqual(pgd);
    // Co-Attack's own claim: collaborative beats the same unimodal attacks run independently
    const text = await attackByName('text', { seed: 1, objective: 'clean' }).run(batch, env);
    const pgdImg = await attackByName('pgd', { seed: 1 }).run(batch, env);
    const independent = await pairDissimilarity({ ...pgdImg, captions: text.captions });
    expect(co.captions!.texts).toEqual(text.captions!.texts); // same text stage
    expect(await pairDissimilarity(co)).toBeGreaterThanOrEqual(independent);
    for (const r of [co, sga]) {
      expect(r.images!.linf.every((v) => v <= 2 / 255 + 1e-6)).toBe(true);
      expect(r.captions!.wordsChanged.every((w) => w <= 1)).toBe(true);
      expect(r.config).toMatchObject({ eps: 2 / 255, steps: 10, stepSize: 0.5 / 255, maxWordsChanged: 1 });
    }
    expect(sga.config).toMatchObject({ scales: [0.5, 0.75, 1.25, 1.5] });
    expect(co.config).toMatchObject({ imageObjective: { clean: 1, paired: 3 } });
  });

  it('are reproducible from the seed', async () => {
    for (const name of ['coattack', 'sga'] as const) {
      const a = await attackByName(name, { seed: 3, steps: 3 }).run(batch, env);
      const b = await attackByName(name, { seed: 3, steps: 3 }).run(batch, env);
      expect(Buffer.from(a.images!.data.buffer).equals(Buffer.from(b.images!.data.buffer))).toBe(true);
      expect(a.captions!.texts).toEqual(b.captions!.texts);
    }
  });

  it('SGA rescaled copies go through resizeBilinear with a gradient back to the input', () => {
    const t = rescaledCopies({ scales: [0.5, 1.5], noiseStd: 0.01 });
    const x = tf.tensor4d(f.images, [f.nImages, f.size, f.size, 3]);
    const rngs = Array.from({ length: f.nImages }, (_, i) => new Rng(i));
    const g = tf.grad((xx: tf.Tensor) => {
      const y = t.apply(xx as tf.Tensor4D, rngs);
      expect(y.shape).toEqual([3 * f.nImages, f.size, f.size, 3]);
      return tf.sum(tf.mul(y, y)) as tf.Scalar;
    })(x);
    const gd = g.dataSync();
    expect(gd.some((v) => v !== 0)).toBe(true);
    expect(gd.every(Number.isFinite)).toBe(true);
    x.dispose();
    g.dispose();
  });

  it('use the top-K goal when targets are given', async () => {
    const txt = await embedTextRows(f.encoder, f.tokenizer, f.captions);
    const img = await embedImageRows(f.encoder, f.images, f.nImages, f.size);
    const targets = {
      k: 1,
      imageQueries: { gallery: { embeddings: txt, count: f.captions.length, dim: E }, gold: Array.from({ length: f.nImages }, (_, i) => [2 * i, 2 * i + 1]) },
      textQueries: { gallery: { embeddings: img, count: f.nImages, dim: E }, gold: f.captionToImage.map((i) => [i]) },
    };
    const r = await attackByName('coattack', { seed: 1, eps: 16 / 255, stepSize: 4 / 255 }).run({ ...batch, targets }, env);
    expect(r.goal).toBe('top1-leave');
    expect(r.images!.success.length).toBe(f.nImages);
    expect(r.captions!.success.length).toBe(f.captions.length);
  });
});

describe('eval helpers', () => {
  it('splitTargets + imagesToFloat build a queries-only batch from a split', async () => {
    const { splitTargets, imagesToFloat } = await import('../../src/attacks/index.js');
    const u8 = Uint8Array.from(f.images, (v) => Math.round(v * 255));
    const fl = imagesToFloat(u8, f.size, [1, 2]);
    expect(fl.length).toBe(2 * f.size * f.size * 3);
    expect(fl[0]).toBeCloseTo(u8[f.size * f.size * 3] / 255, 6);
    const imageEmb = await embedImageRows(f.encoder, f.images, f.nImages, f.size);
    const textEmb = await embedTextRows(f.encoder, f.tokenizer, f.captions);
    const imageToCaptions = Array.from({ length: f.nImages }, (_, i) => [2 * i, 2 * i + 1]);
    const t = splitTargets({ imageEmb, textEmb, dim: E, captionToImage: f.captionToImage, imageToCaptions, batchImages: [1, 2], batchCaptions: [2, 3, 4, 5], k: 5 });
    expect(t.imageQueries.gold).toEqual([[2, 3], [4, 5]]);
    expect(t.textQueries.gold).toEqual([[1], [1], [2], [2]]);
    const r = await attackByName('pgd', { seed: 0 }).run({ images: fl, size: f.size, targets: t }, env);
    expect(r.goal).toBe('top5-leave');
    expect(r.images!.count).toBe(2);
  });
});
