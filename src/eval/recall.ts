/**
 * Retrieval recall from an image x text similarity matrix.
 *
 * Protocol (the standard Karpathy-split ITR protocol of Co-Attack / SGA / ALBEF):
 * - TR (text retrieval, image -> text): each image is a query over all texts; a hit at K when ANY of the image's
 *   ground-truth captions is among the top K.
 * - IR (image retrieval, text -> image): each caption is a query over all images; a hit at K when its image is
 *   among the top K.
 * - Semantic recall (optional): with a predicate matches(a, b) over images (e.g. equal scene graphs), a TR query
 *   on image i is a hit when a top-K caption belongs to an image j with matches(i, j); an IR query with gold
 *   image g is a hit when a top-K image j has matches(g, j). The exact gold always counts (matches(i, i) is
 *   assumed, whatever the predicate says).
 * - Values are percentages (0-100). Per-query results are kept: `rank` (0-based position of the first relevant
 *   item) and 0/1 hit vectors per K, for bootstrap CIs and attack success rates.
 *
 * Ties (pessimistic, deterministic): an item whose score EQUALS the best relevant item's score ranks AHEAD of it
 * when it is not relevant. So rank = #{non-relevant items with score >= best relevant score}. A collapsed model
 * that scores everything equally therefore gets recall ~0 instead of a lucky 100, and an attack that only
 * manages to create a tie counts as a success. NaN scores rank below everything (treated as -Infinity).
 *
 * Cost: counting, not sorting: one pass over the matrix per direction, O(nImages * nTexts) for the ranks (plus
 * O(nImages^2) predicate calls for semantic recall): ~55 ms for 1,000 x 5,000 here (~160 ms with semantic
 * recall). `topK` (partial selection) is provided for callers that need the retrieved lists themselves.
 */

export const DEFAULT_KS = [1, 5, 10] as const;

export interface GroundTruth {
  /** caption index -> image index (length nTexts) */
  captionToImage: ArrayLike<number>;
  /** image index -> caption indices (length nImages; each image needs at least one caption) */
  imageToCaptions: readonly (readonly number[])[];
}

export interface RecallOptions {
  /** cut-offs, default [1, 5, 10] */
  ks?: readonly number[];
  /** image equivalence for semantic recall (e.g. scene-graph equality); omit to skip semantic recall */
  matches?: (imageA: number, imageB: number) => boolean;
}

/** Recall for one direction. */
export interface DirectionRecall {
  /** recall@K in percent, keyed by K */
  recall: Record<number, number>;
  /** per query: 0-based rank of the first relevant item under the pessimistic tie rule */
  rank: Int32Array;
  /** per query and K: 1 when rank < K */
  hits: Record<number, Uint8Array>;
}

export interface RecallResult {
  ks: number[];
  nImages: number;
  nTexts: number;
  /** image -> text (queries: images) */
  tr: DirectionRecall;
  /** text -> image (queries: captions) */
  ir: DirectionRecall;
  /** sum of TR and IR recall over all ks (the usual "RSUM" when ks = 1, 5, 10) */
  rsum: number;
  /** present when options.matches was given */
  semantic?: { tr: DirectionRecall; ir: DirectionRecall; rsum: number };
}

/** Percent-rounded summary for reports and JSON: { tr: {R1, R5, R10}, ir: {...}, rsum } */
export function summarizeRecall(r: RecallResult, digits = 2): Record<string, unknown> {
  const round = (x: number): number => Number(x.toFixed(digits));
  const side = (d: DirectionRecall): Record<string, number> => Object.fromEntries(r.ks.map((k) => [`R${k}`, round(d.recall[k])]));
  const out: Record<string, unknown> = { tr: side(r.tr), ir: side(r.ir), rsum: round(r.rsum) };
  if (r.semantic) out.semantic = { tr: side(r.semantic.tr), ir: side(r.semantic.ir), rsum: round(r.semantic.rsum) };
  return out;
}

/** Validate the shapes and the ground truth; throws a descriptive Error. */
export function checkGroundTruth(sims: ArrayLike<number>, nImages: number, nTexts: number, gt: GroundTruth): void {
  if (!Number.isInteger(nImages) || !Number.isInteger(nTexts) || nImages < 1 || nTexts < 1) {
    throw new Error(`recall: nImages and nTexts must be positive integers, got ${nImages} x ${nTexts}`);
  }
  if (sims.length !== nImages * nTexts) {
    throw new Error(`recall: similarity matrix has ${sims.length} entries, expected ${nImages} x ${nTexts} = ${nImages * nTexts}`);
  }
  if (gt.captionToImage.length !== nTexts) {
    throw new Error(`recall: captionToImage has length ${gt.captionToImage.length}, expected nTexts = ${nTexts}`);
  }
  if (gt.imageToCaptions.length !== nImages) {
    throw new Error(`recall: imageToCaptions has length ${gt.imageToCaptions.length}, expected nImages = ${nImages}`);
  }
  for (let t = 0; t < nTexts; t++) {
    const g = gt.captionToImage[t];
    if (!Number.isInteger(g) || g < 0 || g >= nImages) throw new Error(`recall: captionToImage[${t}] = ${g} is not an image index`);
  }
  const seen = new Uint8Array(nTexts);
  for (let i = 0; i < nImages; i++) {
    const caps = gt.imageToCaptions[i];
    if (!caps || caps.length === 0) throw new Error(`recall: image ${i} has no ground-truth caption (TR is undefined for it)`);
    for (const c of caps) {
      if (!Number.isInteger(c) || c < 0 || c >= nTexts) throw new Error(`recall: imageToCaptions[${i}] contains ${c}, not a caption index`);
      if (gt.captionToImage[c] !== i) {
        throw new Error(`recall: inconsistent ground truth: imageToCaptions[${i}] contains ${c} but captionToImage[${c}] = ${gt.captionToImage[c]}`);
      }
      if (seen[c]) throw new Error(`recall: caption ${c} is listed twice in imageToCaptions`);
      seen[c] = 1;
    }
  }
  const missing = seen.indexOf(0);
  if (missing >= 0) {
    throw new Error(`recall: caption ${missing} (of image ${gt.captionToImage[missing]}) is missing from imageToCaptions`);
  }
}

/** score with NaN mapped to -Infinity (NaN ranks last) */
function sc(x: number): number {
  return x === x ? x : Number.NEGATIVE_INFINITY;
}

function direction(rank: Int32Array, ks: readonly number[]): DirectionRecall {
  const recall: Record<number, number> = {};
  const hits: Record<number, Uint8Array> = {};
  const n = rank.length;
  for (const k of ks) {
    const h = new Uint8Array(n);
    let s = 0;
    for (let q = 0; q < n; q++) {
      if (rank[q] < k) {
        h[q] = 1;
        s++;
      }
    }
    hits[k] = h;
    recall[k] = n === 0 ? 0 : (100 * s) / n;
  }
  return { recall, rank, hits };
}

function sumRecall(a: DirectionRecall, b: DirectionRecall, ks: readonly number[]): number {
  return ks.reduce((s, k) => s + a.recall[k] + b.recall[k], 0);
}

/**
 * TR ranks. relevantText(i, t) says whether caption t is relevant for image query i.
 * rank_i = #{t not relevant : s[i,t] >= max_{t relevant} s[i,t]}.
 */
function trRanks(sims: ArrayLike<number>, nI: number, nT: number, isRelevant: (i: number, t: number) => boolean): Int32Array {
  const rank = new Int32Array(nI);
  const rel = new Uint8Array(nT);
  for (let i = 0; i < nI; i++) {
    const o = i * nT;
    let best = Number.NEGATIVE_INFINITY;
    let any = false;
    for (let t = 0; t < nT; t++) {
      const r = isRelevant(i, t);
      rel[t] = r ? 1 : 0;
      if (r) {
        any = true;
        const v = sc(sims[o + t]);
        if (v > best) best = v;
      }
    }
    let count = 0;
    if (!any) count = nT;
    else for (let t = 0; t < nT; t++) if (!rel[t] && sc(sims[o + t]) >= best) count++;
    rank[i] = count;
  }
  return rank;
}

/** IR ranks: for caption t, relevant images are those with isRelevant(t, i). Column access, no transpose. */
function irRanks(sims: ArrayLike<number>, nI: number, nT: number, isRelevant: (t: number, i: number) => boolean): Int32Array {
  const rank = new Int32Array(nT);
  const rel = new Uint8Array(nI);
  for (let t = 0; t < nT; t++) {
    let best = Number.NEGATIVE_INFINITY;
    let any = false;
    for (let i = 0; i < nI; i++) {
      const r = isRelevant(t, i);
      rel[i] = r ? 1 : 0;
      if (r) {
        any = true;
        const v = sc(sims[i * nT + t]);
        if (v > best) best = v;
      }
    }
    let count = 0;
    if (!any) count = nI;
    else for (let i = 0; i < nI; i++) if (!rel[i] && sc(sims[i * nT + t]) >= best) count++;
    rank[t] = count;
  }
  return rank;
}

/**
 * Exact-gold ranks with a fast path: TR relevance from the caption lists, IR relevance is one image.
 */
function exactTrRanks(sims: ArrayLike<number>, nI: number, nT: number, gt: GroundTruth): Int32Array {
  const rank = new Int32Array(nI);
  for (let i = 0; i < nI; i++) {
    const o = i * nT;
    const caps = gt.imageToCaptions[i];
    let best = Number.NEGATIVE_INFINITY;
    for (const c of caps) {
      const v = sc(sims[o + c]);
      if (v > best) best = v;
    }
    let count = 0;
    for (let t = 0; t < nT; t++) if (sc(sims[o + t]) >= best) count++;
    // every gold caption with score >= best (i.e. == best) was counted; remove them (gold loses no tie to itself)
    for (const c of caps) if (sc(sims[o + c]) >= best) count--;
    rank[i] = count;
  }
  return rank;
}

function exactIrRanks(sims: ArrayLike<number>, nI: number, nT: number, gt: GroundTruth): Int32Array {
  const rank = new Int32Array(nT);
  const best = new Float64Array(nT);
  for (let t = 0; t < nT; t++) best[t] = sc(sims[gt.captionToImage[t] * nT + t]);
  // row-major sweep (cache friendly): count, per caption, the images scoring >= its gold image
  for (let i = 0; i < nI; i++) {
    const o = i * nT;
    for (let t = 0; t < nT; t++) if (sc(sims[o + t]) >= best[t]) rank[t]++;
  }
  for (let t = 0; t < nT; t++) rank[t]--; // the gold image itself
  return rank;
}

/**
 * Recall@K both ways (and semantic recall when options.matches is given) from sims, row-major [nImages, nTexts].
 */
export function computeRecall(
  sims: ArrayLike<number>,
  nImages: number,
  nTexts: number,
  gt: GroundTruth,
  options: RecallOptions = {},
): RecallResult {
  const ks = [...(options.ks ?? DEFAULT_KS)];
  for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new Error(`recall: K must be a positive integer, got ${k}`);
  checkGroundTruth(sims, nImages, nTexts, gt);

  const tr = direction(exactTrRanks(sims, nImages, nTexts, gt), ks);
  const ir = direction(exactIrRanks(sims, nImages, nTexts, gt), ks);
  const result: RecallResult = { ks, nImages, nTexts, tr, ir, rsum: sumRecall(tr, ir, ks) };

  if (options.matches) {
    const m = imageMatchMatrix(nImages, options.matches);
    const c2i = gt.captionToImage;
    const str = direction(trRanks(sims, nImages, nTexts, (i, t) => m[i * nImages + c2i[t]] === 1), ks);
    const sir = direction(irRanks(sims, nImages, nTexts, (t, i) => m[c2i[t] * nImages + i] === 1), ks);
    result.semantic = { tr: str, ir: sir, rsum: sumRecall(str, sir, ks) };
  }
  return result;
}

/** n x n 0/1 matrix of matches(a, b), with the diagonal forced to 1. */
function imageMatchMatrix(n: number, matches: (a: number, b: number) => boolean): Uint8Array {
  const m = new Uint8Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) m[a * n + b] = a === b || matches(a, b) ? 1 : 0;
  }
  return m;
}

/** A matches predicate from per-image keys (e.g. a canonical scene-graph string): equal defined keys match. */
export function matchesFromKeys(keys: readonly (string | number | undefined)[]): (a: number, b: number) => boolean {
  return (a, b) => a === b || (keys[a] !== undefined && keys[a] === keys[b]);
}

/**
 * Top-K indices of scores[offset + j*stride] for j in [0, n), best first, by partial selection (a bounded
 * min-heap, O(n log K)). Ties: lower index first (display order; recall uses the pessimistic rule above).
 * NaN ranks last. For a row of sims: topK(sims, nTexts, k, i * nTexts); for a column: topK(sims, nImages, k, t, nTexts).
 */
export function topK(scores: ArrayLike<number>, n: number, k: number, offset = 0, stride = 1): { index: Int32Array; score: Float32Array } {
  const m = Math.max(0, Math.min(k, n));
  const hi = new Int32Array(m); // heap of indices; root = worst kept
  const hs = new Float64Array(m);
  let size = 0;
  // "a worse than b": lower score, or equal score and higher index
  const worse = (sa: number, ia: number, sb: number, ib: number): boolean => sa < sb || (sa === sb && ia > ib);
  const siftDown = (p: number): void => {
    for (;;) {
      const l = 2 * p + 1;
      const r = l + 1;
      let w = p;
      if (l < size && worse(hs[l], hi[l], hs[w], hi[w])) w = l;
      if (r < size && worse(hs[r], hi[r], hs[w], hi[w])) w = r;
      if (w === p) return;
      [hs[p], hs[w]] = [hs[w], hs[p]];
      [hi[p], hi[w]] = [hi[w], hi[p]];
      p = w;
    }
  };
  for (let j = 0; j < n && m > 0; j++) {
    const s = sc(scores[offset + j * stride]);
    if (size < m) {
      let c = size++;
      hs[c] = s;
      hi[c] = j;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!worse(hs[c], hi[c], hs[p], hi[p])) break;
        [hs[p], hs[c]] = [hs[c], hs[p]];
        [hi[p], hi[c]] = [hi[c], hi[p]];
        c = p;
      }
    } else if (worse(hs[0], hi[0], s, j)) {
      hs[0] = s;
      hi[0] = j;
      siftDown(0);
    }
  }
  const order = Array.from({ length: size }, (_, q) => q).sort((a, b) => (worse(hs[a], hi[a], hs[b], hi[b]) ? 1 : -1));
  const index = new Int32Array(size);
  const score = new Float32Array(size);
  order.forEach((q, r) => {
    index[r] = hi[q];
    score[r] = hs[q];
  });
  return { index, score };
}
