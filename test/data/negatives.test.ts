/**
 * Hard negative captions for `scenes` (src/data/scenes/negatives.ts): a scene edit changes exactly one object's
 * shape or colour, and the caption of the edited scene names the edited scene's (colour, shape)
 * pairs than the original scene (when its objects are distinct), so a hard negative is never a true caption.
 * Hard negative images render those edits through sharp at the loader's size, seeded per image.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { captionScene, tokenize } from '../../src/data/scenes/captions.js';
import { editScene, hardNegativeCaptions, hardNegativeScenes, renderHardNegativeImages } from '../../src/data/scenes/negatives.js';
import { renderScene } from '../../src/data/scenes/raster.js';
import { variantSpec } from '../../src/data/scenes/variant.js';
import { COLOR_WORDS, COLORS, SHAPE_WORDS, SHAPES } from '../../src/data/scenes/vocab.js';
import type { SceneGraph } from '../../src/data/types.js';
import { Rng } from '../../src/util/rng.js';

const scenes: SceneGraph[] = [
  { background: 'gray', objects: [{ shape: 'circle', color: 'red', size: 'large', x: 0.5, y: 0.5 }], relations: [] },
  {
    background: 'sand',
    objects: [
      { shape: 'square', color: 'blue', size: 'small', x: 0.25, y: 0.4 },
      { shape: 'star', color: 'blue', size: 'medium', x: 0.75, y: 0.6 },
    ],
    relations: [{ subject: 0, relation: 'left of', object: 1 }],
  },
  {
    background: 'slate',
    objects: [
      { shape: 'triangle', color: 'yellow', size: 'small', x: 0.2, y: 0.2 },
      { shape: 'cross', color: 'white', size: 'large', x: 0.5, y: 0.75 },
      { shape: 'diamond', color: 'green', size: 'medium', x: 0.8, y: 0.3 },
    ],
    relations: [
      { subject: 0, relation: 'left of', object: 1 },
      { subject: 1, relation: 'left of', object: 2 },
      { subject: 0, relation: 'above', object: 1 },
    ],
  },
];

const canonical = (words: Record<string, readonly string[]>) => new Map(Object.entries(words).flatMap(([k, ws]) => ws.map((w) => [w, k] as const)));
const shapeOf = canonical(SHAPE_WORDS);
const colorOf = canonical(COLOR_WORDS);
/** the distinct (colour, shape) pairs a caption names: each shape noun with the colour word just before it */
function namedPairs(caption: string): string {
  const t = tokenize(caption);
  const pairs = new Set<string>();
  t.forEach((w, i) => {
    const shape = shapeOf.get(w);
    if (!shape) return;
    const color = t.slice(Math.max(0, i - 3), i).map((x) => colorOf.get(x)).filter(Boolean).pop();
    if (color) pairs.add(`${color} ${shape}`);
  });
  return [...pairs].sort().join(', ');
}
const pairsOf = (g: SceneGraph) => [...new Set(g.objects.map((o) => `${o.color} ${o.shape}`))].sort().join(', ');

describe('scene edits', () => {
  it.each(['shape', 'color'] as const)('a %s edit changes that attribute of exactly one object to another vocabulary value', (edit) => {
    const rng = new Rng(3);
    for (const scene of scenes) {
      for (let rep = 0; rep < 20; rep++) {
        const before = JSON.stringify(scene);
        const edited = editScene(scene, rng, edit);
        expect(JSON.stringify(scene)).toBe(before); // the original is not mutated
        const changed = edited.objects.map((o, i) => (JSON.stringify(o) === JSON.stringify(scene.objects[i]) ? -1 : i)).filter((i) => i >= 0);
        expect(changed).toHaveLength(1);
        const i = changed[0];
        expect({ ...edited.objects[i], [edit]: scene.objects[i][edit] }).toEqual(scene.objects[i]);
        expect((edit === 'shape' ? SHAPES : COLORS) as readonly string[]).toContain(edited.objects[i][edit]);
        expect(edited.relations).toEqual(scene.relations);
      }
    }
  });

  it('a hard negative caption describes its edited scene, which is never the original (scenes with distinct objects)', () => {
    for (const scene of scenes) {
      const seeds = [9, 10, 11, 12, 13];
      const editsSeen = new Set<string>();
      for (const seed of seeds) {
        const negs = hardNegativeCaptions(scene, 8, new Rng(seed));
        expect(negs).toHaveLength(8);
        // replay the draws: the k-th caption describes the k-th edited scene
        const replay = new Rng(seed);
        const first = replay.int(2);
        negs.forEach((c, k) => {
          const kind = (first + k) % 2 === 0 ? 'shape' : 'color';
          const edited = editScene(scene, replay, kind);
          expect(namedPairs(c), c).toBe(pairsOf(edited));
          expect(namedPairs(c), c).not.toBe(pairsOf(scene));
          // replay the caption's own draws too, so the next edit starts from the same stream state
          expect(captionScene(edited, replay)).toBe(c);
          editsSeen.add(kind);
        });
        expect(hardNegativeCaptions(scene, 8, new Rng(seed))).toEqual(negs);
      }
      expect([...editsSeen].sort()).toEqual(['color', 'shape']);
    }
  });

  it('refuses a scene without objects', () => {
    expect(() => editScene({ background: 'gray', objects: [], relations: [] }, new Rng(1), 'shape')).toThrow(/no objects/);
  });
});

describe('hard negative images', () => {
  const rngOf = (i: number) => new Rng(1000 + i);

  it('hardNegativeScenes alternates shape and colour edits, each changing one object', () => {
    const kinds = new Set<string>();
    for (const scene of scenes)
      for (let seed = 0; seed < 6; seed++) {
        const edited = hardNegativeScenes(scene, 4, new Rng(seed));
        expect(edited).toHaveLength(4);
        const kindOf = (g: SceneGraph) => {
          const i = g.objects.findIndex((o, k) => JSON.stringify(o) !== JSON.stringify(scene.objects[k]));
          return g.objects[i].shape !== scene.objects[i].shape ? 'shape' : 'color';
        };
        const seq = edited.map(kindOf);
        for (let k = 1; k < seq.length; k++) expect(seq[k]).not.toBe(seq[k - 1]);
        seq.forEach((k) => kinds.add(k));
      }
    expect([...kinds].sort()).toEqual(['color', 'shape']);
    expect(hardNegativeScenes({ background: 'gray', objects: [], relations: [] }, 2, new Rng(1))).toEqual([]);
  });

  it('renders perImage images per scene at the requested size, the same for the same seeds whatever the concurrency', async () => {
    const a = await renderHardNegativeImages(scenes, 2, 16, rngOf, { concurrency: 1 });
    const b = await renderHardNegativeImages(scenes, 2, 16, rngOf, { concurrency: 8 });
    expect(a.length).toBe(scenes.length * 2 * 16 * 16 * 3);
    expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
    const c = await renderHardNegativeImages(scenes, 2, 16, (i) => new Rng(7 + i));
    expect(Buffer.from(c).equals(Buffer.from(a))).toBe(false);
    // every row was written (a row of zeros would be pure black, which no scene background is)
    const per = 16 * 16 * 3;
    for (let r = 0; r < scenes.length * 2; r++) expect(a.subarray(r * per, (r + 1) * per).some((v) => v > 0)).toBe(true);
  });

  it('row i*perImage+k is the k-th edited scene of image i, rendered at 64 px and resized by sharp (lanczos3)', async () => {
    const out = await renderHardNegativeImages(scenes, 2, 16, rngOf);
    const per = 16 * 16 * 3;
    for (let i = 0; i < scenes.length; i++) {
      const rng = rngOf(i);
      const edited = hardNegativeScenes(scenes[i], 2, rng);
      for (let k = 0; k < 2; k++) {
        const big = renderScene(variantSpec(edited[k], 64, rng), 64);
        const small = await sharp(big, { raw: { width: 64, height: 64, channels: 3 } }).resize(16, 16, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
        const row = i * 2 + k;
        expect(Buffer.from(out.subarray(row * per, (row + 1) * per)).equals(small)).toBe(true);
      }
    }
  });

  it('refuses a scene without objects and a non-positive count, naming the problem', async () => {
    await expect(renderHardNegativeImages([{ background: 'gray', objects: [], relations: [] }], 1, 16, rngOf)).rejects.toThrow(/scene 0 has no objects/);
    await expect(renderHardNegativeImages(scenes, 0, 16, rngOf)).rejects.toThrow(/perImage must be a positive integer/);
  });
});
