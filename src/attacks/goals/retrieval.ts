/**
 * Retrieval success criteria (the "goal functions").
 *
 * - topKGoal: the attack succeeds on a query when every gold item has left the top-k of the gallery. Ranks use
 *   the same pessimistic tie rule as eval/recall.ts: rank = #{non-gold items with score >= best gold score}, so a
 *   tie with a non-gold item counts as a success; success <=> rank >= k.
 * - similarityDropGoal: succeeds when the mean cosine similarity to the paired items drops by more than minDrop
 *   (for an unpaired query: when 1 - cos(adv, clean) exceeds minDrop).
 */
import { rowDot } from '../util/embed.js';
import type { RetrievalTarget } from '../types.js';

export interface RetrievalGoal {
  readonly name: string;
  /** rows of `emb` (row-major [rows, dim]) are adversarial embeddings of queries items[r]; success per row */
  succeeded(emb: Float32Array, items: readonly number[]): boolean[];
}

/** 0-based rank of the best gold item of a query embedding row (pessimistic ties) */
export function goldRank(emb: Float32Array, row: number, target: RetrievalTarget, gold: readonly number[]): number {
  const { embeddings, count, dim } = target.gallery;
  if (gold.length === 0) return Infinity;
  let best = -Infinity;
  for (const g of gold) best = Math.max(best, rowDot(emb, row, embeddings, g, dim));
  const isGold = new Set(gold);
  let rank = 0;
  for (let j = 0; j < count; j++) {
    if (isGold.has(j)) continue;
    const s = rowDot(emb, row, embeddings, j, dim);
    if (!(s < best)) rank++; // NaN and ties rank ahead of the gold
  }
  return rank;
}

export function topKGoal(target: RetrievalTarget, k = 1): RetrievalGoal {
  if (!Number.isInteger(k) || k < 1) throw new Error(`topKGoal: k must be a positive integer, got ${k}`);
  return {
    name: `top${k}-leave`,
    succeeded: (emb, items) => items.map((it, r) => goldRank(emb, r, target, target.gold[it]) >= k),
  };
}

export interface SimilarityDropSpec {
  dim: number;
  /** clean query embeddings [n, dim] */
  clean: Float32Array;
  /** paired items' embeddings and per query the paired rows (empty set = unpaired) */
  paired?: { embeddings: Float32Array; sets: readonly (readonly number[])[] };
  minDrop?: number;
}

export function similarityDropGoal(spec: SimilarityDropSpec): RetrievalGoal {
  const minDrop = spec.minDrop ?? 0;
  const { dim, clean, paired } = spec;
  const meanSim = (emb: Float32Array, row: number, set: readonly number[]): number => {
    let s = 0;
    for (const t of set) s += rowDot(emb, row, paired!.embeddings, t, dim);
    return s / set.length;
  };
  const base = new Map<number, number>();
  return {
    name: `similarity-drop>${minDrop}`,
    succeeded: (emb, items) =>
      items.map((it, r) => {
        const set = paired?.sets[it] ?? [];
        if (set.length === 0) return 1 - rowDot(emb, r, clean, it, dim) > minDrop;
        let b = base.get(it);
        if (b === undefined) base.set(it, (b = meanSim(clean, it, set)));
        return b - meanSim(emb, r, set) > minDrop;
      }),
  };
}

/**
 * Targets for a batch cut from a split, against the split's clean galleries (the queries-only scenario):
 * image query i (split image batchImages[i]) has gold = all captions of that image in the text gallery;
 * caption query j (split caption batchCaptions[j]) has gold = its image in the image gallery.
 */
export function splitTargets(p: {
  /** clean embeddings of ALL split images / captions, row-major [*, dim] */
  imageEmb: Float32Array;
  textEmb: Float32Array;
  dim: number;
  captionToImage: ArrayLike<number>;
  imageToCaptions: readonly (readonly number[])[];
  /** split indices of the batch's images / captions (default: the whole split) */
  batchImages?: readonly number[];
  batchCaptions?: readonly number[];
  k?: number;
}): { k: number; imageQueries: RetrievalTarget; textQueries: RetrievalTarget } {
  const nImg = p.imageEmb.length / p.dim;
  const nTxt = p.textEmb.length / p.dim;
  const bi = p.batchImages ?? Array.from({ length: nImg }, (_, i) => i);
  const bc = p.batchCaptions ?? Array.from({ length: nTxt }, (_, i) => i);
  return {
    k: p.k ?? 1,
    imageQueries: { gallery: { embeddings: p.textEmb, count: nTxt, dim: p.dim }, gold: bi.map((i) => p.imageToCaptions[i].slice()) },
    textQueries: { gallery: { embeddings: p.imageEmb, count: nImg, dim: p.dim }, gold: bc.map((c) => [p.captionToImage[c]]) },
  };
}
