/**
 * Scene-graph equivalence, used for "semantic recall" (a retrieved image counts as correct when its scene
 * matches the query's gold scene) and for de-duplicating generated scenes.
 *
 * The rule (sceneMatches):
 *   Two scenes match iff there is a one-to-one mapping between their objects such that
 *   1. mapped objects have the same shape and the same colour, and (unless opts.size === false) the same size
 *      class (small / medium / large);
 *   2. the mapped *stated* spatial relations are identical: the set of "X left of Y" facts and (unless
 *      opts.vertical === false) the set of "X above Y" facts. "right of" / "below" are normalised to the
 *      reversed "left of" / "above". Relations come from the scene's `relations` list, not from coordinates:
 *      the generator states a relation only when the centres are clearly apart (>= 0.14 of the image edge) and
 *      never places two objects in the ambiguous 0.06..0.14 band, so there are no near-ties.
 *   "bigger than" / "smaller than" relations, background, absolute positions, rotation and colour noise are
 *   ignored (bigger/smaller follows from the sizes when sizes are compared).
 * This is an equivalence relation (labelled-graph isomorphism): sceneMatches(a, b) === (sceneKey(a) === sceneKey(b)).
 */
import type { SceneGraph } from '../types.js';

export interface SceneMatchOptions {
  /** compare size classes (default true) */
  size?: boolean;
  /** compare above/below relations (default true) */
  vertical?: boolean;
}

type Rel = 'L' | 'A';

/** Stated spatial facts as [subject, 'L' | 'A', object] meaning subject is left of / above object. */
export function spatialFacts(scene: SceneGraph, vertical = true): [number, Rel, number][] {
  const out: [number, Rel, number][] = [];
  const seen = new Set<string>();
  const add = (s: number, r: Rel, o: number) => {
    const k = `${s}${r}${o}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push([s, r, o]);
    }
  };
  for (const { subject, relation, object } of scene.relations) {
    if (relation === 'left of') add(subject, 'L', object);
    else if (relation === 'right of') add(object, 'L', subject);
    else if (vertical && relation === 'above') add(subject, 'A', object);
    else if (vertical && relation === 'below') add(object, 'A', subject);
  }
  return out;
}

function labels(scene: SceneGraph, size: boolean): string[] {
  return scene.objects.map((o) => `${o.shape.toLowerCase()}|${o.color.toLowerCase()}${size ? `|${o.size}` : ''}`);
}

/** All orderings of indices that sort objects by label (permuting only within equal labels). */
function* canonicalOrders(lab: string[]): Generator<number[]> {
  const idx = lab.map((_, i) => i).sort((a, b) => (lab[a] < lab[b] ? -1 : lab[a] > lab[b] ? 1 : a - b));
  const groups: number[][] = [];
  for (const i of idx) {
    const g = groups[groups.length - 1];
    if (g && lab[g[0]] === lab[i]) g.push(i);
    else groups.push([i]);
  }
  let combos = 1;
  for (const g of groups) for (let k = 2; k <= g.length; k++) combos *= k;
  if (combos > 40320) throw new Error(`sceneKey: too many identical objects to canonicalise (${combos} orderings)`);
  const perms = (arr: number[]): number[][] => {
    if (arr.length <= 1) return [arr];
    const res: number[][] = [];
    arr.forEach((x, i) => {
      for (const p of perms([...arr.slice(0, i), ...arr.slice(i + 1)])) res.push([x, ...p]);
    });
    return res;
  };
  const groupPerms = groups.map(perms);
  const choice = groups.map(() => 0);
  for (;;) {
    yield groupPerms.flatMap((ps, gi) => ps[choice[gi]]);
    let g = groups.length - 1;
    while (g >= 0 && ++choice[g] === groupPerms[g].length) choice[g--] = 0;
    if (g < 0) return;
  }
}

/**
 * Canonical string of a scene under the sceneMatches rule: equal keys <=> matching scenes.
 * Use it to group or de-duplicate scenes in O(n) instead of comparing all pairs.
 */
export function sceneKey(scene: SceneGraph, opts: SceneMatchOptions = {}): string {
  const lab = labels(scene, opts.size ?? true);
  const facts = spatialFacts(scene, opts.vertical ?? true);
  let best: string | undefined;
  for (const order of canonicalOrders(lab)) {
    const pos = new Array<number>(order.length);
    order.forEach((obj, p) => (pos[obj] = p));
    const rels = facts.map(([s, r, o]) => `${pos[s]}${r}${pos[o]}`).sort();
    const key = `${order.map((i) => lab[i]).join(',')}/${rels.join(',')}`;
    if (best === undefined || key < best) best = key;
  }
  return best ?? '/';
}

/** True iff the scenes contain the same objects in the same stated spatial arrangement (see the module comment). */
export function sceneMatches(a: SceneGraph, b: SceneGraph, opts: SceneMatchOptions = {}): boolean {
  if (a.objects.length !== b.objects.length) return false;
  return sceneKey(a, opts) === sceneKey(b, opts);
}
