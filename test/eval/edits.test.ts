/**
 * Minimal-edit discrimination (src/eval/edits.ts): the plan edits exactly one attribute of the intended kind, the
 * scoring gives 100% to a model that separates true from edited, 50% to a blind one (ties count one half) and 0%
 * to an inverted one, and the whole pipeline on a generated split is seeded and leaves no tensors behind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { tf } from '../../src/engine/tf.js';
import { loadDataset } from '../../src/data/load.js';
import { generateScenes } from '../../src/data/scenes/generate.js';
import type { DatasetSplit } from '../../src/data/types.js';
import { EDIT_KINDS, editDiscrimination, planEditCases, scoreEditCases } from '../../src/eval/edits.js';
import { Encoder } from '../../src/model/encoder.js';
import { buildTokenizer } from '../../src/model/tokenizer.js';
import type { DualEncoder } from '../../src/model/types.js';
import { createFakeDualEncoder, fakeConfig } from './fake-model.js';

let dir: string;
let split: DatasetSplit;
let model: DualEncoder;
let enc: Encoder;

beforeAll(async () => {
  await initBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'mf-edits-'));
  const g = await generateScenes({ out: join(dir, 'scenes'), train: 0, val: 0, test: 6, seed: 4 });
  split = await loadDataset(g.file, { split: 'test', size: 8, cacheDir: join(dir, 'cache') });
  const tokenizer = buildTokenizer(split.captions, { maxLen: 32 });
  model = createFakeDualEncoder(fakeConfig(tokenizer.vocabSize, 32, 8, 8), 2);
  enc = new Encoder(model, tokenizer);
});

afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('planEditCases', () => {
  it('per image: the true scene, then `edits` edits of each kind, each changing one object in that attribute only', () => {
    const plan = planEditCases(split, { edits: 3, seed: 1 });
    expect(plan.count).toBe(6);
    expect(plan.perImage).toBe(7);
    expect(plan.cases).toHaveLength(42);
    for (let i = 0; i < plan.count; i++) {
      const truth = plan.cases[i * 7];
      expect(truth.kind).toBe('true');
      expect(truth.scene).toEqual(split.scenes![i]);
      for (const c of plan.cases.slice(i * 7 + 1, i * 7 + 7)) {
        expect(c.image).toBe(i);
        const changed = c.scene.objects.filter((o, k) => JSON.stringify(o) !== JSON.stringify(truth.scene.objects[k]));
        expect(changed).toHaveLength(1);
        const k = c.scene.objects.indexOf(changed[0]);
        expect({ ...changed[0], [c.kind]: truth.scene.objects[k][c.kind as 'shape' | 'color'] }).toEqual(truth.scene.objects[k]);
        expect(c.caption && c.caption.length > 0).toBe(true);
      }
    }
    expect(plan.cases.slice(1, 7).map((c) => c.kind)).toEqual(['shape', 'shape', 'shape', 'color', 'color', 'color']);
    const again = planEditCases(split, { edits: 3, seed: 1 });
    expect(again.cases.map((c) => [c.scene, c.caption])).toEqual(plan.cases.map((c) => [c.scene, c.caption]));
    expect(planEditCases(split, { edits: 1, limit: 2 }).cases).toHaveLength(6);
  });

  it('refuses a split without scene graphs and a non-positive edit count, naming them', () => {
    expect(() => planEditCases({ ...split, scenes: undefined })).toThrow(/needs a scene graph with objects for every image; test image/);
    expect(() => planEditCases(split, { edits: 0 })).toThrow(/edits must be a positive integer, got 0/);
  });
});

describe('scoreEditCases', () => {
  // 2 images, 2 captions each, one edit of each kind: E = 4 one-hot directions
  const planOf = () => planEditCases(split, { edits: 1, limit: 2 });
  const gt = { imageToCaptions: [[0, 1], [2, 3]] };
  const dim = 4;
  const rows = (vs: number[][]) => Float32Array.from(vs.flat());
  const e = (k: number) => [0, 1, 2, 3].map((d) => +(d === k));
  const captions = rows([e(0), e(0), e(1), e(1)]);

  it('a model that separates true from edited scores 100% on both sides', () => {
    const images = rows([e(0), e(2), e(2), e(1), e(3), e(3)]); // image i's true rendering on its captions' axis, edits elsewhere
    const editCaps = rows([e(2), e(2), e(2), e(3), e(3), e(3)]);
    const s = scoreEditCases(gt, planOf(), dim, images, captions, editCaps);
    for (const k of EDIT_KINDS) {
      expect(s[k].text).toEqual({ wins: 4, of: 4, ci: { lo: 100, hi: 100 } });
      expect(s[k].image).toEqual({ wins: 4, of: 4, ci: { lo: 100, hi: 100 } });
    }
  });

  it('a blind model (edits embedded like the truth) scores exactly 50%, an inverted one 0%', () => {
    const plan = planOf();
    const blind = scoreEditCases(gt, plan, dim, rows([e(0), e(0), e(0), e(1), e(1), e(1)]), captions, rows([e(0), e(0), e(0), e(1), e(1), e(1)]));
    // the true rendering off its captions' axis, the edits on it, and the edited captions on the true rendering's axis
    const inverted = scoreEditCases(gt, plan, dim, rows([e(2), e(0), e(0), e(3), e(1), e(1)]), captions, rows([e(2), e(2), e(2), e(3), e(3), e(3)]));
    for (const k of EDIT_KINDS) {
      expect(blind[k].text).toEqual({ wins: 2, of: 4, ci: { lo: 50, hi: 50 } });
      expect(blind[k].image).toEqual({ wins: 2, of: 4, ci: { lo: 50, hi: 50 } });
      expect(inverted[k].text.wins).toBe(0);
      expect(inverted[k].image.wins).toBe(0);
    }
  });
});

describe('editDiscrimination', () => {
  it('renders, embeds and scores every (caption, edit) pair; seeded; no tensors left behind', async () => {
    const before = tf.memory().numTensors;
    const r = await editDiscrimination(enc, split, { edits: 2, seed: 3 });
    expect(tf.memory().numTensors).toBe(before);
    const captionsOf = split.imageToCaptions.reduce((n, cs) => n + cs.length, 0);
    expect(r.images).toBe(6);
    for (const k of EDIT_KINDS)
      for (const side of ['text', 'image'] as const) {
        expect(r.scores[k][side].of).toBe(captionsOf * 2);
        expect(r.scores[k][side].wins).toBeGreaterThanOrEqual(0);
        expect(r.scores[k][side].wins).toBeLessThanOrEqual(r.scores[k][side].of);
        const pct = (100 * r.scores[k][side].wins) / r.scores[k][side].of;
        expect(r.scores[k][side].ci.lo).toBeLessThanOrEqual(pct + 0.05);
        expect(r.scores[k][side].ci.hi).toBeGreaterThanOrEqual(pct - 0.05);
      }
    expect(await editDiscrimination(enc, split, { edits: 2, seed: 3 })).toEqual(r);
    await expect(editDiscrimination(enc, { ...split, size: 16 })).rejects.toThrow(/16 px images, the model takes 8 px/);
  });
});
