/**
 * Hard negative captions for `scenes` (src/data/scenes/negatives.ts): a scene edit changes exactly one object's
 * shape or colour, and the caption of the edited scene names the edited scene's (colour, shape)
 * pairs than the original scene (when its objects are distinct), so a hard negative is never a true caption.
 */
import { describe, expect, it } from 'vitest';
import { captionScene, tokenize } from '../../src/data/scenes/captions.js';
import { editScene, hardNegativeCaptions } from '../../src/data/scenes/negatives.js';
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
