/**
 * Alignment filter (PAPER finding 5: good augmented pairs are aligned): score every augmented pair with a
 * reference model and keep those whose cosine similarity is at least the `quantile`-quantile of the
 * ground-truth pairs' cosines under the same model (so the threshold is calibrated per model: q = 0.05 keeps
 * augmented pairs that look at least as aligned as the 5% least aligned real pairs).
 * - augmented captions of an image: cos(image, caption);
 * - augmented image views: the mean cos(view, ground-truth caption of that view).
 * Counts of generated and kept items are reported per augmenter.
 */
import type { Pair } from './types.js';

export interface PairScorer {
  dim: number;
  /** uint8 RGB [n,S,S,3] -> row-major [n, dim] L2-normalised */
  embedImagesMatrix(pixels: Uint8Array, count: number): Promise<Float32Array>;
  embedTextsMatrix(texts: readonly string[]): Promise<Float32Array>;
}

export interface AlignmentCounts {
  generated: number;
  kept: number;
}

export interface AlignmentReport {
  quantile: number;
  threshold: number;
  /** ground-truth pair cosines: mean and the quantile used */
  gtMean: number;
  captions: Record<string, AlignmentCounts>;
  views: Record<string, AlignmentCounts>;
}

const dot = (a: Float32Array, i: number, b: Float32Array, j: number, d: number) => {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[i * d + k] * b[j * d + k];
  return s;
};

const viewKind = (v: string) => v.replace(/#\d+$/, '');

/**
 * Filters `sources` in place (each entry: views[0] = the original image with all its captions, then augmented
 * views whose captions are index-aligned with views[0]'s) and returns the counts.
 */
export async function alignmentFilter(sources: { views: Pair[] }[], scorer: PairScorer, quantile: number): Promise<AlignmentReport> {
  const d = scorer.dim;
  if (sources.length === 0) return { quantile, threshold: -Infinity, gtMean: NaN, captions: {}, views: {} };
  const S = sources[0].views[0].size;
  const per = S * S * 3;
  // embed every distinct image view and every distinct caption once
  const imgs: Uint8Array[] = [];
  const viewRow: number[][] = [];
  for (const s of sources) viewRow.push(s.views.map((v) => (imgs.push(v.image), imgs.length - 1)));
  const pixels = new Uint8Array(imgs.length * per);
  imgs.forEach((im, i) => pixels.set(im, i * per));
  const imgEmb = await scorer.embedImagesMatrix(pixels, imgs.length);
  const textRow = new Map<string, number>();
  for (const s of sources) for (const v of s.views) for (const c of v.captions) if (!textRow.has(c)) textRow.set(c, textRow.size);
  const txtEmb = await scorer.embedTextsMatrix([...textRow.keys()]);

  const gt: number[] = [];
  for (let si = 0; si < sources.length; si++) {
    const base = sources[si].views[0];
    base.captions.forEach((c, j) => {
      if (base.origins[j] === 'gt') gt.push(dot(imgEmb, viewRow[si][0], txtEmb, textRow.get(c)!, d));
    });
  }
  const sorted = gt.slice().sort((a, b) => a - b);
  const threshold = quantile <= 0 ? -Infinity : sorted[Math.min(sorted.length - 1, Math.floor(quantile * (sorted.length - 1)))];
  const captions: Record<string, AlignmentCounts> = {};
  const views: Record<string, AlignmentCounts> = {};
  const bump = (m: Record<string, AlignmentCounts>, k: string, kept: boolean) => {
    m[k] ??= { generated: 0, kept: 0 };
    m[k].generated++;
    if (kept) m[k].kept++;
  };

  for (let si = 0; si < sources.length; si++) {
    const src = sources[si];
    const base = src.views[0];
    const keepCap = base.captions.map((c, j) => {
      if (base.origins[j] === 'gt') return true;
      const ok = dot(imgEmb, viewRow[si][0], txtEmb, textRow.get(c)!, d) >= threshold;
      bump(captions, base.origins[j], ok);
      return ok;
    });
    const kept: Pair[] = [];
    src.views.forEach((v, vi) => {
      const caps = v.captions.filter((_, j) => keepCap[j] ?? true);
      const origins = v.origins.filter((_, j) => keepCap[j] ?? true);
      if (vi === 0) {
        kept.push({ ...v, captions: caps, origins });
        return;
      }
      let sum = 0;
      let n = 0;
      v.captions.forEach((c, j) => {
        if (v.origins[j] === 'gt') {
          sum += dot(imgEmb, viewRow[si][vi], txtEmb, textRow.get(c)!, d);
          n++;
        }
      });
      const ok = n === 0 || sum / n >= threshold;
      bump(views, viewKind(v.view), ok);
      if (ok) kept.push({ ...v, captions: caps, origins });
    });
    src.views = kept;
  }
  return { quantile, threshold, gtMean: gt.reduce((a, b) => a + b, 0) / Math.max(1, gt.length), captions, views };
}
