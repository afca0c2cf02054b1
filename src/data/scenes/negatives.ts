/**
 * Hard negative captions for `scenes`: captions of a minimally edited scene graph (one object's shape or colour
 * changed, everything else kept), in the spirit of NegCLIP (Yuksekgonul et al. 2023). In a random batch two
 * images almost never differ by shape alone, so in-batch negatives put next to no pressure on the encoders to
 * see shape (docs/results.md, session 5); a caption that differs from a true one only in one object's shape does.
 * Captions name every object by colour and shape (captions.ts), so the edited attribute is always in the text
 * and the negative is never a valid caption of the original image.
 */
import type { Rng } from '../../util/rng.js';
import type { SceneGraph } from '../types.js';
import { captionScene } from './captions.js';
import { COLORS, SHAPES } from './vocab.js';

export type SceneEdit = 'shape' | 'color';

/** A copy of the scene with one object's shape or colour replaced by a different value of the vocabulary. */
export function editScene(scene: SceneGraph, rng: Rng, edit: SceneEdit): SceneGraph {
  if (scene.objects.length === 0) throw new Error('editScene: the scene has no objects to edit');
  const objects = scene.objects.map((o) => ({ ...o }));
  const target = objects[rng.int(objects.length)];
  const values: readonly string[] = edit === 'shape' ? SHAPES : COLORS;
  const others = values.filter((v) => v !== target[edit]);
  target[edit] = rng.pick(others);
  return { ...scene, objects, relations: scene.relations.map((r) => ({ ...r })) };
}

/** `count` hard negative captions of the scene, alternating shape and colour edits from a random start. */
export function hardNegativeCaptions(scene: SceneGraph, count: number, rng: Rng): string[] {
  const out: string[] = [];
  if (scene.objects.length === 0) return out;
  const first = rng.int(2);
  for (let k = 0; k < count; k++) out.push(captionScene(editScene(scene, rng, (first + k) % 2 === 0 ? 'shape' : 'color'), rng));
  return out;
}
