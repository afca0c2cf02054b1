/**
 * Captions from a scene graph: varied templates and WordNet synonyms, always naming every object by colour and
 * shape and (for 2+ objects) stating enough stated spatial relations to fix the arrangement, so a caption
 * identifies its image up to what sceneMatches compares (sizes are mentioned only sometimes).
 * Works from the SceneGraph alone, so augmentation can draw fresh ground-truth captions for any scenes image.
 */
import type { Rng } from '../../util/rng.js';
import type { SceneGraph } from '../types.js';
import { spatialFacts } from './match.js';
import { BIGGER_WORDS, colorWords, pickWord, shapeWords, SIZE_WORDS, SMALLER_WORDS } from './vocab.js';

interface Mention {
  indef: string; // "a small crimson disc"
  def: string; // "the crimson disc"
}

const SIZE_RANK = { small: 0, medium: 1, large: 2 } as const;

function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

function withArticle(words: string[]): string {
  return `${article(words[0])} ${words.join(' ')}`;
}

type Fact = [number, 'L' | 'A', number];

class CaptionBuilder {
  private readonly mentions: Mention[];
  private readonly nouns: { color: string; shape: string }[];

  constructor(
    private readonly scene: SceneGraph,
    private readonly rng: Rng,
  ) {
    const n = scene.objects.length;
    const sizeP = n === 1 ? 0.6 : 0.35;
    // one word per colour / shape within a caption, so two purple objects are both "violet" (or both "purple")
    const colorWord = new Map<string, string>();
    const shapeWord = new Map<string, string>();
    const choose = (m: Map<string, string>, key: string, words: readonly string[]) => {
      let w = m.get(key);
      if (w === undefined) m.set(key, (w = pickWord(words, () => rng.next())));
      return w;
    };
    this.nouns = scene.objects.map((o) => ({
      color: choose(colorWord, o.color, colorWords(o.color)),
      shape: choose(shapeWord, o.shape, shapeWords(o.shape)),
    }));
    this.mentions = scene.objects.map((o, i) => {
      const { color, shape } = this.nouns[i];
      const words = [color, shape];
      if (rng.next() < sizeP) words.unshift(pickWord(SIZE_WORDS[o.size], () => rng.next()));
      return { indef: withArticle(words), def: `the ${color} ${shape}` };
    });
  }

  indef(i: number): string {
    return this.mentions[i].indef;
  }

  def(i: number): string {
    return this.mentions[i].def;
  }

  /** "a smaller blue square" relative to object `ref`, when sizes differ (else the plain mention) */
  comparative(i: number, ref: number): string {
    const a = SIZE_RANK[this.scene.objects[i].size];
    const b = SIZE_RANK[this.scene.objects[ref].size];
    if (a === b || this.rng.next() < 0.6) return this.indef(i);
    const word = a > b ? this.rng.pick(BIGGER_WORDS) : this.rng.pick(SMALLER_WORDS);
    return withArticle([word, this.nouns[i].color, this.nouns[i].shape]);
  }

  single(): string {
    const t = this.indef(0);
    const { color, shape } = this.nouns[0];
    const size = pickWord(SIZE_WORDS[this.scene.objects[0].size], () => this.rng.next());
    const templates = [
      () => t,
      () => `there is ${t}`,
      () => `an image of ${t}`,
      () => `a picture of ${t}`,
      () => `a drawing of ${t}`,
      () => `a single ${color} ${shape}`,
      () => `a single ${size} ${color} ${shape}`,
      () => `one ${size} ${color} ${shape}`,
      () => `${t} alone`,
      () => `just ${t}`,
      () => `only ${t} in the picture`,
    ];
    return this.rng.pick(templates)();
  }

  /** p is left of (rel 'L') or above (rel 'A') q */
  pair(p: number, rel: 'L' | 'A', q: number): string {
    const P = this.indef(p);
    const Q = this.indef(q);
    const Qc = () => this.comparative(q, p);
    const Pc = () => this.comparative(p, q);
    const pd = this.def(p);
    const qd = this.def(q);
    const h = [
      () => `${P} to the left of ${Qc()}`,
      () => `${Q} to the right of ${Pc()}`,
      () => `${P} on the left and ${Q} on the right`,
      () => `there is ${Q} on the right and ${P} on the left`,
      () => `${P} left of ${Qc()}`,
      () => `${P} and ${Qc()} to its right`,
      () => `${Q} with ${Pc()} to its left`,
      () => `${P} next to ${Qc()}, which is on the right`,
      () => `${P} and ${Q}, with ${pd} on the left`,
      () => `${Q} and ${P}, with ${qd} on the right`,
    ];
    const v = [
      () => `${P} above ${Qc()}`,
      () => `${Q} below ${Pc()}`,
      () => `${P} at the top and ${Q} at the bottom`,
      () => `there is ${Q} at the bottom and ${P} at the top`,
      () => `${Q} under ${Pc()}`,
      () => `${P} over ${Qc()}`,
      () => `${Q} beneath ${Pc()}`,
      () => `${P} and ${Qc()} below it`,
      () => `${Q} with ${Pc()} above it`,
      () => `${P} and ${Q}, with ${pd} at the top`,
    ];
    const body = this.rng.pick(rel === 'L' ? h : v)();
    if (this.rng.next() < 0.25) {
      return `${this.rng.pick(['two shapes: ', 'two objects: ', 'two figures: ', 'a picture of ', 'an image of '])}${body}`;
    }
    return body;
  }

  /** "to the left of" etc. from the subject's point of view */
  relPhrase(subject: number, fact: Fact): string {
    const [s, r] = fact;
    const forward = s === subject;
    if (r === 'L') return forward ? this.rng.pick(['to the left of', 'left of']) : this.rng.pick(['to the right of', 'right of']);
    return forward ? this.rng.pick(['above', 'over']) : this.rng.pick(['below', 'under', 'beneath']);
  }

  /** total order along one axis: [first, middle, last] when all three pairs are stated on that axis */
  private line(facts: Fact[], rel: 'L' | 'A'): number[] | undefined {
    const before = new Map<number, number>();
    const axis = facts.filter((f) => f[1] === rel);
    if (axis.length !== 3) return undefined;
    for (const [s] of axis) before.set(s, (before.get(s) ?? 0) + 1);
    const order = [0, 1, 2].sort((a, b) => (before.get(b) ?? 0) - (before.get(a) ?? 0));
    return (before.get(order[0]) ?? 0) === 2 && (before.get(order[1]) ?? 0) === 1 ? order : undefined;
  }

  triple(facts: Fact[]): string {
    const hline = this.line(facts, 'L');
    const vline = this.line(facts, 'A');
    if ((hline || vline) && this.rng.next() < 0.55) {
      const horizontal = hline !== undefined && (vline === undefined || this.rng.next() < 0.7);
      if (horizontal) {
        const [x, y, z] = hline.map((i) => this.indef(i));
        return this.rng.pick([
          () => `from left to right: ${x}, ${y} and ${z}`,
          () => `${x} on the left, ${y} in the middle and ${z} on the right`,
          () => `three shapes: ${x}, ${y} and ${z}, from left to right`,
          () => `${y} between ${x} on the left and ${z} on the right`,
          () => `${z} on the right, ${y} in the middle and ${x} on the left`,
        ])();
      }
      const [t, m, bo] = vline!.map((i) => this.indef(i));
      return this.rng.pick([
        () => `from top to bottom: ${t}, ${m} and ${bo}`,
        () => `${t} at the top, ${m} in the middle and ${bo} at the bottom`,
        () => `three shapes stacked: ${t}, ${m} and ${bo}, from top to bottom`,
      ])();
    }
    // a spanning tree of two stated facts, preferring left/right
    const pickFact = (cands: Fact[]): Fact => {
      const hs = cands.filter((f) => f[1] === 'L');
      return hs.length > 0 && (hs.length === cands.length || this.rng.next() < 0.65) ? this.rng.pick(hs) : this.rng.pick(cands);
    };
    const first = pickFact(facts);
    const [s1, r1, o1] = first;
    const third = [0, 1, 2].find((i) => i !== s1 && i !== o1)!;
    const linking = facts.filter((f) => f[0] === third || f[2] === third);
    const second = pickFact(linking);
    const anchor = second[0] === third ? second[2] : second[0];
    const P = this.indef(s1);
    const Q = this.indef(o1);
    const opening = this.rng.pick(
      r1 === 'L'
        ? [() => `${P} to the left of ${Q}`, () => `${Q} to the right of ${P}`, () => `${P} on the left and ${Q} on the right`]
        : [() => `${P} above ${Q}`, () => `${Q} below ${P}`, () => `${P} at the top and ${Q} at the bottom`],
    )();
    const clause = `${this.indef(third)} ${this.relPhrase(third, second)} ${this.def(anchor)}`;
    const lead = this.rng.next() < 0.2 ? this.rng.pick(['three shapes: ', 'three objects: ', 'three figures: ']) : '';
    return `${lead}${opening}${this.rng.pick([', and ', '; ', ', and there is '])}${clause}`;
  }
}

/** One caption for a scene (objects 1..3 get dedicated templates; larger scenes list facts pairwise). */
export function captionScene(scene: SceneGraph, rng: Rng): string {
  const n = scene.objects.length;
  const b = new CaptionBuilder(scene, rng);
  if (n === 0) return rng.pick(['an empty picture', 'a plain background with no shapes']);
  if (n === 1) return b.single();
  const facts = spatialFacts(scene) as Fact[];
  if (n === 2) {
    const hs = facts.filter((f) => f[1] === 'L');
    const vs = facts.filter((f) => f[1] === 'A');
    const f = hs.length && (!vs.length || rng.next() < 0.65) ? hs[0] : vs[0];
    if (f) return b.pair(f[0], f[1], f[2]);
    return `${b.indef(0)} and ${b.indef(1)}`;
  }
  if (n === 3 && facts.length >= 2) {
    // a spanning tree exists when the stated facts connect all three objects
    const touched = new Set(facts.flatMap((f) => [f[0], f[2]]));
    if (touched.size === 3) return b.triple(facts);
  }
  const list = scene.objects.map((_, i) => b.indef(i));
  const rels = facts.map((f) => `${b.def(f[0])} ${b.relPhrase(f[0], f)} ${b.def(f[2])}`);
  return [`${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}`, ...rels].join('; ');
}

/** `count` distinct captions (fewer only if the templates cannot produce that many distinct strings). */
export function captionsForScene(scene: SceneGraph, rng: Rng, count = 5): string[] {
  const out = new Set<string>();
  for (let attempt = 0; out.size < count && attempt < count * 40; attempt++) out.add(captionScene(scene, rng));
  return [...out];
}

/** Karpathy-style tokens: lower case, punctuation dropped. */
export function tokenize(caption: string): string[] {
  return caption
    .toLowerCase()
    .replace(/[^a-z0-9\s-]/g, ' ')
    .split(/\s+/)
    .filter(Boolean);
}
