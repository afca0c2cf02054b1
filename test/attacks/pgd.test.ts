import { describe, it, expect, beforeAll } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { attackByName, pgdSearch, linfBall, pixelRange, signStep, EmbeddingObjective, embedImageRows } from '../../src/attacks/index.js';
import { Rng } from '../../src/util/rng.js';
import { fixture } from './helpers.js';
import { useCpu } from './setup.js';

beforeAll(useCpu);

const f = fixture({ nImages: 6 });
// include saturated pixels so the [0,1] clip is exercised
f.images.fill(0, 0, 40);
f.images.fill(1, 40, 80);
const batch = { images: f.images, size: f.size, captions: f.captions, captionToImage: f.captionToImage };
const env = { encoder: f.encoder, tokenizer: f.tokenizer };
const per = f.size * f.size * 3;

function maxAbsDiff(a: Float32Array, b: Float32Array, i: number): number {
  let m = 0;
  for (let k = i * per; k < (i + 1) * per; k++) m = Math.max(m, Math.abs(a[k] - b[k]));
  return m;
}

describe('image PGD', () => {
  it('L-inf: respects eps and the pixel range, and moves to the boundary', async () => {
    const eps = 8 / 255;
    const r = await attackByName('pgd', { eps, stepSize: 2 / 255, steps: 5, seed: 3 }).run(batch, env);
    const adv = r.images!.data;
    for (let i = 0; i < f.nImages; i++) {
      expect(maxAbsDiff(adv, f.images, i)).toBeLessThanOrEqual(eps + 1e-6);
      expect(r.images!.linf[i]).toBeLessThanOrEqual(eps + 1e-6);
    }
    expect(Math.min(...adv)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...adv)).toBeLessThanOrEqual(1);
    expect(Math.max(...r.images!.linf)).toBeGreaterThan(eps * 0.9);
    expect(r.images!.queries.every((q) => q === 6)).toBe(true); // steps + 1 forwards
  });

  it('L2: respects eps per image and the pixel range', async () => {
    const eps = 0.5;
    const r = await attackByName('pgd', { eps, norm: 'l2', stepSize: 0.2, steps: 6, seed: 3 }).run(batch, env);
    const adv = r.images!.data;
    for (let i = 0; i < f.nImages; i++) {
      let ss = 0;
      for (let k = i * per; k < (i + 1) * per; k++) ss += (adv[k] - f.images[k]) ** 2;
      expect(Math.sqrt(ss)).toBeLessThanOrEqual(eps + 1e-5);
    }
    expect(Math.min(...adv)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...adv)).toBeLessThanOrEqual(1);
    expect(Math.max(...r.images!.l2)).toBeGreaterThan(eps * 0.5);
  });

  it('eps = 0 returns the clean images', async () => {
    const r = await attackByName('pgd', { eps: 0, seed: 1 }).run(batch, env);
    expect(Array.from(r.images!.data)).toEqual(Array.from(f.images));
  });

  it('more steps are never weaker on the objective (same seed)', async () => {
    let prev: number[] | null = null;
    for (const steps of [0, 1, 2, 5, 10]) {
      const r = await attackByName('pgd', { steps, seed: 11 }).run(batch, env);
      const obj = r.images!.objective;
      if (prev) obj.forEach((v, i) => expect(v).toBeGreaterThanOrEqual(prev![i] - 1e-6));
      prev = obj;
    }
    // and the attack does something: 10 steps beat the random start
    const r0 = await attackByName('pgd', { steps: 0, seed: 11 }).run(batch, env);
    const r10 = await attackByName('pgd', { steps: 10, seed: 11 }).run(batch, env);
    expect(r10.images!.objective.reduce((a, b) => a + b)).toBeGreaterThan(r0.images!.objective.reduce((a, b) => a + b) + 1e-3);
  });

  it('is reproducible from its seed and independent of chunking', async () => {
    const a = await attackByName('pgd', { seed: 5 }).run(batch, env);
    const b = await attackByName('pgd', { seed: 5, batchSize: 4 }).run(batch, env);
    const c = await attackByName('pgd', { seed: 6 }).run(batch, env);
    expect(Buffer.from(a.images!.data.buffer).equals(Buffer.from(b.images!.data.buffer))).toBe(true);
    expect(Buffer.from(a.images!.data.buffer).equals(Buffer.from(c.images!.data.buffer))).toBe(false);
    expect(a.seed).toBe(5);
    expect(a.config).toMatchObject({ eps: 2 / 255, steps: 10, stepSize: 0.5 / 255, norm: 'linf', randomStart: true, seed: 5 });
  });

  it('keeps tf.memory().numTensors flat across runs', async () => {
    const attack = attackByName('pgd', { steps: 3, seed: 1, batchSize: 4 });
    await attack.run(batch, env); // warm-up (backend caches)
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await attack.run(batch, env);
    expect(tf.memory().numTensors).toBe(before);
    const sga = attackByName('sga', { steps: 2, seed: 1 });
    await sga.run(batch, env);
    const before2 = tf.memory().numTensors;
    await sga.run(batch, env);
    await attackByName('coattack', { steps: 2, seed: 1 }).run(batch, env);
    expect(tf.memory().numTensors).toBe(before2);
  });

  it('pgdSearch ascends the given objective and leaves no tensors behind', async () => {
    const emb = await embedImageRows(f.encoder, f.images, f.nImages, f.size);
    const objective = new EmbeddingObjective({ weights: { clean: 1, paired: 0 }, dim: f.encoder.config.embedDim, clean: emb });
    const items = Array.from({ length: f.nImages }, (_, i) => i);
    const chunk = objective.forItems(items);
    const x0 = tf.tensor4d(f.images, [f.nImages, f.size, f.size, 3]);
    const before = tf.memory().numTensors;
    const out = await pgdSearch(
      x0,
      (x) => chunk.loss(f.encoder.imageTower(x)),
      { steps: 4, randomStart: false, norm: 'linf', eps: 4 / 255, step: signStep(1 / 255), constraints: [linfBall(4 / 255), pixelRange()] },
      items.map((i) => new Rng(i)),
    );
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(Math.min(...out.objective)).toBeGreaterThan(0);
    out.adv.dispose();
    x0.dispose();
    chunk.dispose();
  });

  it('rejects bad budgets with a clear message', () => {
    expect(() => attackByName('pgd', { eps: 8 })).toThrow(/pixel units/);
    expect(() => attackByName('pgd', { steps: 1.5 })).toThrow(/steps/);
    expect(() => attackByName('nope')).toThrow(/unknown attack 'nope'/);
  });
});
