/**
 * Defenses: every method's step runs and lowers its loss on a tiny batch; the inner attacks never touch the
 * weights and leave no tensors behind; an adversarial run (MAT + augmentation) resumed from a checkpoint ends
 * bit-identical to an uninterrupted one. A tiny real DualEncoder (16 px, width 32, 1 block) on the wasm backend (single-threaded: deterministic).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { initBackend } from '../../src/engine/backend.js';
import { opCacheTensorCount } from '../../src/engine/ops.js';
import { trainSchema, type TrainConfig } from '../../src/config.js';
import { loadDataset } from '../../src/data/load.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { createDualEncoder } from '../../src/model/dual-encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { DualEncoder, ModelConfig, Tokenizer } from '../../src/model/types.js';
import { Rng } from '../../src/util/rng.js';
import { buildAugmentPool } from '../../src/augment/pool.js';
import { trainModel, type StepInfo } from '../../training/trainer.js';
import { pgdImages, pgdTokenEmbeddings, substituteWords } from '../../training/inner.js';
import { contrastiveAgainst, fareObjective } from '../../training/losses/adversarial.js';
import { gatherPixels } from '../../training/batches.js';

let dir: string;
let split: DatasetSplit;
let tokenizer: Tokenizer;
let init: DualEncoder;

const tinyConfig = (vocabSize: number): ModelConfig => ({
  preset: 'test-tiny',
  embedDim: 32,
  image: { size: 16, patch: 8, width: 32, depth: 1, heads: 2, mlpRatio: 2 },
  text: { width: 32, depth: 1, heads: 2, mlpRatio: 2, maxLen: 24, vocabSize },
  initLogitScale: Math.log(1 / 0.07),
});

beforeAll(async () => {
  await initBackend('wasm');
  dir = mkdtempSync(join(tmpdir(), 'mf-methods-'));
  const g = await generateScenes({ out: join(dir, 'scenes'), train: 8, val: 0, test: 0, seed: 11 });
  split = await loadDataset(g.file, { size: 16, split: 'train', cacheDir: join(dir, 'cache') });
  tokenizer = buildTokenizer(split.captions, { maxLen: 24 });
  init = createDualEncoder(tinyConfig(tokenizer.vocabSize), 3);
});

afterAll(() => {
  init.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const cfg = (o: Partial<TrainConfig>): TrainConfig => trainSchema.parse({ batch: 8, epochs: 8, lr: 3e-3, warmupFraction: 0, minLrRatio: 1, checkpointEvery: 1, trainEps: 8, trainSteps: 2, ...o });

const snapshot = (m: DualEncoder) => new Map([...m.variables].map(([k, v]) => [k, Float32Array.from(v.dataSync() as Float32Array)]));
const sameWeights = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) =>
  [...a].every(([k, v]) => {
    const w = b.get(k)!;
    return v.length === w.length && v.every((x, i) => Object.is(x, w[i]));
  });

async function run(name: string, config: TrainConfig, extra: Partial<Parameters<typeof trainModel>[0]> = {}) {
  const losses: StepInfo[] = [];
  const r = await trainModel({
    out: join(dir, name),
    train: split,
    config,
    seed: 5,
    quiet: true,
    init: { model: init, tokenizer, id: 'tiny-init' },
    // numTensors without the engine's cache of constants (one per distinct shape: caption lengths vary with the
    // tokenizer, so a new shape may first appear at any step), as test/training/memory.test.ts counts them
    onStep: (i) => losses.push({ ...i, numTensors: i.numTensors - opCacheTensorCount() }),
    ...extra,
  });
  return { r, losses };
}

describe('defense methods', () => {
  for (const [method, o] of [
    ['tecoa', {}],
    ['fare', {}],
    ['mat', {}],
    ['mat', { textAttack: 'embedding' }],
  ] as const) {
    it(`${method}${'textAttack' in o ? ` (${o.textAttack} text attack)` : ''}: the loss decreases on a fixed tiny batch; TeCoA/FARE leave the text tower alone`, async () => {
      const before = snapshot(init);
      const reference = method === 'fare' ? createDualEncoder(init.config, 3) : undefined;
      if (reference) for (const [k, v] of reference.variables) v.assign(init.variables.get(k)!);
      const { r, losses } = await run(`${method}-${Object.values(o).join('')}`, cfg({ method, epochs: 6, ...o }), { reference });
      expect(losses.length).toBe(6);
      const first = (losses[0].loss + losses[1].loss) / 2;
      const last = (losses[4].loss + losses[5].loss) / 2;
      expect(last).toBeLessThan(first);
      expect(losses.every((l) => l.innerMs !== undefined)).toBe(true);
      if (method === 'mat' && !('textAttack' in o)) expect(losses.some((l) => (l.wordsChanged ?? 0) > 0)).toBe(true);
      const after = snapshot(r.model);
      const changed = (prefix: string) => [...after].some(([k, v]) => k.startsWith(prefix) && !sameWeights(new Map([[k, v]]), new Map([[k, before.get(k)!]])));
      expect(changed('image.')).toBe(true);
      expect(changed('text.')).toBe(method === 'mat');
      expect(sameWeights(snapshot(init), before)).toBe(true); // the init model is copied, not trained
      if (method === 'tecoa' || method === 'fare') expect(losses[5].numTensors).toBe(losses[2].numTensors);
      r.model.dispose();
      reference?.dispose();
    });
  }

  it('adversarial methods refuse to run without their reference / pool', async () => {
    await expect(run('fare-noref', cfg({ method: 'fare' }))).rejects.toThrow(/reference/);
    await expect(run('mat-nopool', cfg({ method: 'mat', augment: ['eda'] }))).rejects.toThrow(/pool/);
  });
});

describe('clean-path options: --hard-negatives, --hard-negative-images and --shift', () => {
  it('hard negative captions and images: the loss decreases, numTensors stays flat, and they change the run; they refuse a split without scene graphs', async () => {
    const plain = await run('clean-plain', cfg({ epochs: 6 }));
    const { r, losses } = await run('clean-hn', cfg({ epochs: 6, hardNegatives: 2, shift: 2 }));
    expect(losses.length).toBe(6);
    expect((losses[4].loss + losses[5].loss) / 2).toBeLessThan((losses[0].loss + losses[1].loss) / 2);
    expect(losses[5].numTensors).toBe(losses[2].numTensors);
    // the negatives join the denominators: the first step's loss (same weights, same batch) is higher with them
    expect(losses[0].loss).toBeGreaterThan(plain.losses[0].loss);
    const again = await run('clean-hn-again', cfg({ epochs: 6, hardNegatives: 2, shift: 2 }));
    expect(again.losses.map((l) => l.loss)).toEqual(losses.map((l) => l.loss)); // seeded: same negatives, same shifts
    const noScenes: DatasetSplit = { ...split, scenes: undefined };
    await expect(trainModel({ out: join(dir, 'hn-noscenes'), train: noScenes, config: cfg({ hardNegatives: 1 }), seed: 5, quiet: true, init: { model: init, tokenizer, id: 'tiny-init' } })).rejects.toThrow(
      /--hard-negatives needs a scene graph/,
    );
    await expect(run('hn-mat', cfg({ method: 'mat', hardNegatives: 1 }))).rejects.toThrow(/--hard-negatives works with --method clean/);
    // hard negative images: rendered once, seeded; they join the text->image denominators
    const hni = await run('clean-hni', cfg({ epochs: 6, hardNegativeImages: 1, shift: 2 }));
    expect((hni.losses[4].loss + hni.losses[5].loss) / 2).toBeLessThan((hni.losses[0].loss + hni.losses[1].loss) / 2);
    expect(hni.losses[5].numTensors).toBe(hni.losses[2].numTensors);
    expect(hni.losses[0].loss).toBeGreaterThan(plain.losses[0].loss);
    const hniAgain = await run('clean-hni-again', cfg({ epochs: 6, hardNegativeImages: 1, shift: 2 }));
    expect(hniAgain.losses.map((l) => l.loss)).toEqual(hni.losses.map((l) => l.loss));
    await expect(trainModel({ out: join(dir, 'hni-noscenes'), train: noScenes, config: cfg({ hardNegativeImages: 1 }), seed: 5, quiet: true, init: { model: init, tokenizer, id: 'tiny-init' } })).rejects.toThrow(
      /--hard-negative-images needs a scene graph/,
    );
    await expect(run('hni-tecoa', cfg({ method: 'tecoa', hardNegativeImages: 1 }))).rejects.toThrow(/--hard-negative-images works with --method clean/);
    hni.r.model.dispose();
    hniAgain.r.model.dispose();
    // a fine-tune keeps the init model's architecture: asking for another stem is an error, not silently ignored
    await expect(run('stem-mismatch', cfg({ stem: 'conv' }))).rejects.toThrow(/--stem conv does not match the --init model's image stem 'linear'/);
    await expect(run('size-mismatch', cfg({ imageSize: 64 }))).rejects.toThrow(/--image-size 64 does not match the --init model's 16/);
    await expect(run('patch-mismatch', cfg({ patch: 4 }))).rejects.toThrow(/--patch 4 does not match the --init model's 8/);
    for (const x of [plain.r, r, again.r]) x.model.dispose();
  });
});

describe('inner attacks', () => {
  it('use input gradients only: weights bit-identical, no tensors left behind, perturbation within budget', async () => {
    const model = init;
    const before = snapshot(model);
    const rows = [0, 1, 2, 3];
    const px = gatherPixels(split, rows);
    const caps = rows.map((r) => split.captions[split.imageToCaptions[r][0]]);
    const owner = Int32Array.from(rows.map((_, i) => i));
    const x = tf.tensor4d(px, [4, 16, 16, 3]);
    const enc = caps.map((c) => tokenizer.encode(c));
    const L = Math.max(...enc.map((e) => e.length));
    const ids = tf.tensor2d(Int32Array.from(enc.flatMap((e) => [...e, ...new Array(L - e.length).fill(0)])), [4, L], 'int32');
    const textEmb = tf.tidy(() => model.textTower(ids));
    const scale = tf.tidy(() => model.logitScale());
    const ref = tf.tidy(() => model.imageTower(x));
    const n0 = tf.memory().numTensors;

    const eps = 4 / 255;
    const adv = pgdImages(x, (xx) => contrastiveAgainst(model.imageTower(xx), textEmb, owner, scale), { eps, stepSize: 2 / 255, steps: 3 }, new Rng(1));
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(adv, x))).dataSync()[0]);
    expect(d).toBeLessThanOrEqual(eps + 1e-6);
    expect(d).toBeGreaterThan(0);
    const a2 = pgdImages(x, (xx) => contrastiveAgainst(model.imageTower(xx), textEmb, owner, scale), { eps, stepSize: 2 / 255, steps: 3 }, new Rng(1));
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(adv, a2))).dataSync()[0])).toBe(0); // same seed, same perturbation
    const fareAdv = pgdImages(x, (xx) => fareObjective(model.imageTower(xx), ref), { eps, stepSize: 2 / 255, steps: 2 }, new Rng(2));
    // the attack raises its objective
    const obj = (xx: tf.Tensor4D) => tf.tidy(() => fareObjective(model.imageTower(xx), ref).dataSync()[0]);
    expect(obj(fareAdv)).toBeGreaterThan(obj(x));
    adv.dispose();
    a2.dispose();
    fareAdv.dispose();

    const delta = await pgdTokenEmbeddings(model, ids, (te) => contrastiveAgainst(ref, te, owner, scale), { relEps: 0.5, steps: 2 });
    const padMax = tf.tidy(() => tf.max(tf.abs(tf.mul(delta, tf.expandDims(tf.cast(tf.equal(ids, 0), 'float32'), 2)))).dataSync()[0]);
    expect(padMax).toBe(0);
    expect(tf.tidy(() => tf.max(tf.abs(delta)).dataSync()[0])).toBeGreaterThan(0);
    delta.dispose();

    const sub = await substituteWords(model, tokenizer, px, 16, caps, owner, { words: 1, candidates: 8, wir: 'random', seed: 3 });
    expect(sub.texts.length).toBe(4);
    sub.texts.forEach((t, i) => {
      const a = t.split(/\s+/);
      const b = caps[i].split(/\s+/);
      expect(a.length).toBe(b.length);
      expect(a.filter((w, k) => w !== b[k]).length).toBeLessThanOrEqual(1);
    });
    expect(sub.wordsChanged).toBeGreaterThan(0);
    // a label lexicon in which every word is its own label forbids every substitution (the constraint is applied)
    const everyWordItsOwnLabel = { name: 'identity', labelOf: (w: string) => w.toLowerCase() };
    const none = await substituteWords(model, tokenizer, px, 16, caps, owner, { words: 1, candidates: 8, wir: 'random', seed: 3, labels: everyWordItsOwnLabel });
    expect(none.texts).toEqual(caps);
    expect(none.wordsChanged).toBe(0);
    expect(tf.memory().numTensors).toBe(n0);
    expect(sameWeights(snapshot(model), before)).toBe(true);
    for (const t of [x, ids, textEmb, scale, ref]) t.dispose();
  });
});

describe('resume', () => {
  it('MAT + augmentation killed after step 1 (mid-epoch) and resumed (pool rebuilt) ends bit-identical to an uninterrupted run', async () => {
    const config = cfg({ method: 'mat', epochs: 2, batch: 4, augment: ['eda', 'flip', 'oracle-caption'], alignQuantile: 0 });
    const pool = () => buildAugmentPool(split, config.augment, { seed: 5 });
    const straight = await run('resume-straight', config, { pool: await pool() });
    const partial = await run('resume-killed', config, { pool: await pool(), stopAfterStep: 1 });
    expect(partial.r.finished).toBe(false);
    partial.r.model.dispose();
    const resumed = await run('resume-killed', config, { pool: await pool(), resume: true });
    expect(resumed.r.finished).toBe(true);
    expect(resumed.losses.map((l) => l.step)).toEqual([2, 3, 4]);
    expect(resumed.losses.map((l) => l.loss)).toEqual(straight.losses.slice(1).map((l) => l.loss));
    expect(sameWeights(snapshot(resumed.r.model), snapshot(straight.r.model))).toBe(true);
    straight.r.model.dispose();
    resumed.r.model.dispose();
  });
});
