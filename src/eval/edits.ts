/**
 * Minimal-edit discrimination on `scenes` (in the style of Winoground / ARO): can the model tell a scene from the
 * same scene with ONE object's shape, or colour, changed? Recall hides this: a test set is mostly told apart by
 * colour, size, count and position, so a model blind to shape can still reach R@1 ~50 (docs/results.md).
 *
 * For every image of a split, `edits` shape edits and as many colour edits of its scene graph (editScene). The
 * true scene and every edit are rendered afresh through one path (fresh nuisance, the generator's resolution,
 * sharp's lanczos3 resize: renderScenesAtSize), so neither side is favoured by being the data set's own pixels.
 * - text side: a ground-truth caption scores the true rendering above the edited rendering;
 * - image side: the true rendering scores a ground-truth caption above a caption of the edited scene.
 * Ties count one half, so a blind model scores 50% and chance is 50% everywhere.
 */
import { captionScene } from '../data/scenes/captions.js';
import { editScene, renderScenesAtSize, type SceneEdit } from '../data/scenes/negatives.js';
import type { DatasetSplit, SceneGraph } from '../data/types.js';
import type { Encoder } from '../model/encoder.js';
import { Rng } from '../util/rng.js';
import { bootstrapMeanCI } from './bootstrap.js';

export const EDIT_KINDS: readonly SceneEdit[] = ['shape', 'color'];

export interface EditOptions {
  /** edits of each kind per image (default 2) */
  edits?: number;
  seed?: number;
  /** the first N images of the split (default all) */
  limit?: number;
}

/**
 * wins (ties count 1/2) out of comparisons, per edit kind and side, with a 95% percentile-bootstrap CI in percent
 * over images (the comparisons of one image share its scene, so images, not comparisons, are the independent units)
 */
export interface EditSideScore {
  wins: number;
  of: number;
  ci: { lo: number; hi: number };
}
export type EditScores = Record<SceneEdit, { text: EditSideScore; image: EditSideScore }>;

export interface EditReport {
  images: number;
  edits: number;
  seed: number;
  scores: EditScores;
}

/** One rendering: image `image`'s true scene (kind 'true') or one of its edits, with the caption of an edit. */
export interface EditCase {
  image: number;
  kind: SceneEdit | 'true';
  scene: SceneGraph;
  rng: Rng;
  caption?: string;
}

/** The renderings to make, image by image: the true scene first, then `edits` edits of each kind. */
export function planEditCases(split: DatasetSplit, opts: EditOptions = {}): { cases: EditCase[]; count: number; perImage: number; edits: number; seed: number } {
  const edits = opts.edits ?? 2;
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(edits) || edits < 1) throw new Error(`edit discrimination: edits must be a positive integer, got ${edits}`);
  const scenes = split.scenes ?? [];
  const missing = scenes.length === split.count ? scenes.findIndex((g) => !g || g.objects.length === 0) : 0;
  if (missing >= 0) throw new Error(`edit discrimination needs a scene graph with objects for every image; ${split.name} image ${split.imageIds[missing] ?? missing} has none (not a scenes data set?)`);
  const count = Math.min(split.count, opts.limit ?? split.count);
  const cases: EditCase[] = [];
  for (let i = 0; i < count; i++) {
    const rng = new Rng(seed * 1_000_003 + i);
    cases.push({ image: i, kind: 'true', scene: scenes[i]!, rng });
    for (const kind of EDIT_KINDS)
      for (let e = 0; e < edits; e++) {
        const scene = editScene(scenes[i]!, rng, kind);
        cases.push({ image: i, kind, scene, rng, caption: captionScene(scene, rng) });
      }
  }
  return { cases, count, perImage: 1 + EDIT_KINDS.length * edits, edits, seed };
}

/**
 * Scores from embeddings (row-major, `dim` per row): `caseImages` one row per case, `captions` one per ground-truth
 * caption of the split, `editCaptions` one per case (rows of 'true' cases are ignored).
 */
export function scoreEditCases(
  split: Pick<DatasetSplit, 'imageToCaptions'>,
  plan: { cases: EditCase[]; count: number; perImage: number },
  dim: number,
  caseImages: Float32Array,
  captions: Float32Array,
  editCaptions: Float32Array,
): EditScores {
  const dot = (a: Float32Array, i: number, b: Float32Array, j: number) => {
    let s = 0;
    for (let d = 0; d < dim; d++) s += a[i * dim + d] * b[j * dim + d];
    return s;
  };
  const win = (a: number, b: number) => (a > b ? 1 : a === b ? 0.5 : 0);
  const perImage = Object.fromEntries(EDIT_KINDS.map((k) => [k, { text: [] as number[], image: [] as number[] }])) as Record<SceneEdit, { text: number[]; image: number[] }>;
  const totals = Object.fromEntries(EDIT_KINDS.map((k) => [k, { text: [0, 0], image: [0, 0] }])) as Record<SceneEdit, { text: number[]; image: number[] }>;
  for (let i = 0; i < plan.count; i++) {
    const base = i * plan.perImage;
    const mine = Object.fromEntries(EDIT_KINDS.map((k) => [k, { text: [0, 0], image: [0, 0] }])) as Record<SceneEdit, { text: number[]; image: number[] }>;
    for (let k = base + 1; k < base + plan.perImage; k++) {
      const m = mine[plan.cases[k].kind as SceneEdit];
      for (const c of split.imageToCaptions[i]) {
        m.text[0] += win(dot(captions, c, caseImages, base), dot(captions, c, caseImages, k));
        m.text[1]++;
        m.image[0] += win(dot(caseImages, base, captions, c), dot(caseImages, base, editCaptions, k));
        m.image[1]++;
      }
    }
    for (const kind of EDIT_KINDS)
      for (const side of ['text', 'image'] as const) {
        const [w, n] = mine[kind][side];
        if (n === 0) continue;
        perImage[kind][side].push(w / n);
        totals[kind][side][0] += w;
        totals[kind][side][1] += n;
      }
  }
  const side = (kind: SceneEdit, which: 'text' | 'image'): EditSideScore => {
    const [wins, of] = totals[kind][which];
    const ci = of > 0 ? bootstrapMeanCI(perImage[kind][which], { scale: 100, seed: 0 }) : { lo: Number.NaN, hi: Number.NaN };
    return { wins, of, ci: { lo: Math.round(ci.lo * 10) / 10, hi: Math.round(ci.hi * 10) / 10 } };
  };
  return Object.fromEntries(EDIT_KINDS.map((k) => [k, { text: side(k, 'text'), image: side(k, 'image') }])) as EditScores;
}

/** The whole test: plan, render, embed, score. */
export async function editDiscrimination(encoder: Encoder, split: DatasetSplit, opts: EditOptions = {}): Promise<EditReport> {
  if (split.size !== encoder.imageSize) throw new Error(`edit discrimination: split ${split.name} has ${split.size} px images, the model takes ${encoder.imageSize} px`);
  const plan = planEditCases(split, opts);
  const pixels = await renderScenesAtSize(plan.cases.length, split.size, (r) => plan.cases[r]);
  const caseImages = await encoder.embedImagesMatrix(pixels, plan.cases.length);
  let captionRows = 0;
  for (const cs of split.imageToCaptions.slice(0, plan.count)) for (const c of cs) captionRows = Math.max(captionRows, c + 1);
  const captions = await encoder.embedTextsMatrix(split.captions.slice(0, captionRows));
  // rows of 'true' cases stay zero: scoreEditCases never reads them
  const editCaptions = new Float32Array(plan.cases.length * encoder.dim);
  const edited = plan.cases.map((c, k) => (c.caption === undefined ? -1 : k)).filter((k) => k >= 0);
  const emb = await encoder.embedTextsMatrix(edited.map((k) => plan.cases[k].caption!));
  edited.forEach((k, j) => editCaptions.set(emb.subarray(j * encoder.dim, (j + 1) * encoder.dim), k * encoder.dim));
  return { images: plan.count, edits: plan.edits, seed: plan.seed, scores: scoreEditCases(split, plan, encoder.dim, caseImages, captions, editCaptions) };
}

export function formatEditReport(r: EditReport): string {
  const pct = ({ wins, of, ci }: EditSideScore) => `${((100 * wins) / of).toFixed(1)}% [${ci.lo.toFixed(1)}, ${ci.hi.toFixed(1)}] (${wins}/${of})`;
  return EDIT_KINDS.map((k) => `${k.padEnd(6)} edit: caption prefers the true image ${pct(r.scores[k].text)}; image prefers the true caption ${pct(r.scores[k].image)} (chance 50%; 95% CI over images)`).join('\n');
}
