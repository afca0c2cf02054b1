/**
 * The augmentation pool and the `--augment` names.
 *
 * Before training, every training image (a "source") gets a pool of views: views[0] is the image itself with its
 * ground-truth captions plus the captions of the text and cross-modal-text augmenters; the other views are new
 * images (image and cross-modal-image augmenters, the misaligned flip) with the captions that hold for them
 * (index-aligned with views[0]'s). The pool is deterministic in (data, augment list, seed), optionally filtered
 * for alignment, and rebuilt identically on resume. A training step then samples, per source row, one view
 * (an augmented one with probability augmentImageP) and k ground-truth + `extra` augmented captions of it;
 * all captions of a row are positives of its image (multi-positive loss).
 *
 * Names: eda, siblings, paraphrase (cache), basic, flip, oracle-caption / oracle-image (scenes oracle),
 * provider-caption / provider-image (cache), misaligned (control); groups: text = eda+siblings(+paraphrase),
 * image = basic+flip, cross = oracle-* (scenes) and/or provider-* (cache), nn = text+cross+image (what exists
 * for the data: on any Karpathy/JSONL set without a cache that is eda+siblings+basic+flip).
 */
import type { DatasetSplit } from '../data/types.js';
import { Rng } from '../util/rng.js';
import { alignmentFilter, type AlignmentReport, type PairScorer } from './filter.js';
import { basicImageAugmenter, flipAugmenter } from './image.js';
import { misalignedFlipAugmenter, swappedCaptionsAugmenter } from './misaligned.js';
import { oracleCaptionAugmenter, oracleImageAugmenter } from './oracle.js';
import { cachedCaptionAugmenter, cachedImageAugmenter, ProviderCache } from './providers.js';
import { edaAugmenter, paraphraseAugmenter, siblingsAugmenter } from './text.js';
import type { Augmenter, Pair } from './types.js';
import { SynonymTable } from './words.js';

export const AUGMENT_NAMES = ['eda', 'siblings', 'paraphrase', 'basic', 'flip', 'oracle-caption', 'oracle-image', 'provider-caption', 'provider-image', 'misaligned', 'nn', 'text', 'image', 'cross'] as const;
export type AugmentName = (typeof AUGMENT_NAMES)[number];

export interface ResolveContext {
  hasScenes: boolean;
  hasCache: boolean;
  cacheHasParaphrases?: boolean;
}

/** Expand groups into concrete augmenter names (deduplicated, in a fixed order). Throws on impossible names. */
export function resolveAugmentNames(names: readonly string[], ctx: ResolveContext): string[] {
  const out = new Set<string>();
  const text = () => ['eda', 'siblings', ...(ctx.hasCache && ctx.cacheHasParaphrases !== false ? ['paraphrase'] : [])];
  const cross = () => [...(ctx.hasScenes ? ['oracle-caption', 'oracle-image'] : []), ...(ctx.hasCache ? ['provider-caption', 'provider-image'] : [])];
  for (const n of names) {
    switch (n) {
      case 'text':
        text().forEach((x) => out.add(x));
        break;
      case 'image':
        ['basic', 'flip'].forEach((x) => out.add(x));
        break;
      case 'cross':
        if (cross().length === 0) throw new Error("--augment cross needs scene graphs (the scenes data set) or a provider cache (--augment-cache, written by 'manyfold augment prepare')");
        cross().forEach((x) => out.add(x));
        break;
      case 'nn':
        [...text(), ...cross(), 'basic', 'flip'].forEach((x) => out.add(x));
        break;
      case 'oracle-caption':
      case 'oracle-image':
        if (!ctx.hasScenes) throw new Error(`--augment ${n}: the scenes oracle needs scene graphs, this data set has none (use a provider cache)`);
        out.add(n);
        break;
      case 'provider-caption':
      case 'provider-image':
      case 'paraphrase':
        if (!ctx.hasCache) throw new Error(`--augment ${n} reads a provider cache: pass --augment-cache FILE (written by 'manyfold augment prepare')`);
        out.add(n);
        break;
      case 'eda':
      case 'siblings':
      case 'basic':
      case 'flip':
      case 'misaligned':
        out.add(n);
        break;
      default:
        throw new Error(`unknown augmentation '${n}' (known: ${AUGMENT_NAMES.join(', ')})`);
    }
  }
  if (out.has('misaligned') && out.has('flip')) throw new Error('--augment misaligned (the control) cannot be combined with the aligned flip');
  const order = ['eda', 'siblings', 'paraphrase', 'oracle-caption', 'provider-caption', 'misaligned', 'basic', 'flip', 'oracle-image', 'provider-image'];
  return order.filter((n) => out.has(n));
}

export interface SourcePool {
  views: Pair[];
}

export interface AugmentPool {
  names: string[];
  sources: SourcePool[];
  stats: PoolStats;
  alignment?: AlignmentReport;
}

export interface PoolStats {
  /** augmented captions per origin, before and after the filter */
  captions: Record<string, number>;
  views: Record<string, number>;
  ms: number;
}

export interface BuildPoolOptions {
  seed: number;
  perSource?: number;
  imageVariants?: number;
  cache?: ProviderCache;
  synonyms?: SynonymTable;
  /** alignment filter: scorer + quantile (quantile 0 or no scorer: no filter) */
  scorer?: PairScorer;
  quantile?: number;
}

export function countPool(sources: readonly SourcePool[]): { captions: Record<string, number>; views: Record<string, number> } {
  const captions: Record<string, number> = {};
  const views: Record<string, number> = {};
  for (const s of sources) {
    for (const o of s.views[0].origins) if (o !== 'gt') captions[o] = (captions[o] ?? 0) + 1;
    for (const v of s.views.slice(1)) {
      const k = v.view.replace(/#\d+$/, '');
      views[k] = (views[k] ?? 0) + 1;
    }
  }
  return { captions, views };
}

export async function buildAugmentPool(split: DatasetSplit, requested: readonly string[], o: BuildPoolOptions): Promise<AugmentPool> {
  const t0 = performance.now();
  const names = resolveAugmentNames(requested, { hasScenes: !!split.scenes?.some(Boolean), hasCache: !!o.cache, cacheHasParaphrases: o.cache ? o.cache.counts().paraphrases > 0 : undefined });
  const per = o.perSource ?? 3;
  const iv = o.imageVariants ?? 2;
  const sourceCaptions = split.imageToCaptions.map((cs) => cs.map((c) => split.captions[c]));
  const syn = names.includes('eda') ? (o.synonyms ?? (await SynonymTable.build(split.captions))) : undefined;
  const textAugs: Augmenter[] = [];
  const imageAugs: Augmenter[] = [];
  for (const n of names) {
    switch (n) {
      case 'eda':
        textAugs.push(edaAugmenter(syn!, { variants: per }));
        break;
      case 'siblings':
        textAugs.push(siblingsAugmenter());
        break;
      case 'paraphrase':
        textAugs.push(paraphraseAugmenter((c) => o.cache!.paraphrases(c), per));
        break;
      case 'oracle-caption':
        textAugs.push(oracleCaptionAugmenter(per));
        break;
      case 'provider-caption':
        textAugs.push(cachedCaptionAugmenter(o.cache!, split.imageIds));
        break;
      case 'misaligned':
        textAugs.push(swappedCaptionsAugmenter(sourceCaptions, Math.min(2, per)));
        imageAugs.push(misalignedFlipAugmenter());
        break;
      case 'basic':
        imageAugs.push(basicImageAugmenter({ variants: iv }));
        break;
      case 'flip':
        imageAugs.push(flipAugmenter());
        break;
      case 'oracle-image':
        imageAugs.push(oracleImageAugmenter(iv));
        break;
      case 'provider-image':
        imageAugs.push(cachedImageAugmenter(o.cache!, split.imageIds));
        break;
    }
  }
  const S = split.size;
  const px = S * S * 3;
  const sources: SourcePool[] = [];
  for (let s = 0; s < split.count; s++) {
    const rng = new Rng(o.seed * 7_368_787 + s * 31 + 5);
    const gt = sourceCaptions[s];
    let base: Pair = { source: s, image: split.images.subarray(s * px, (s + 1) * px), size: S, captions: gt.slice(), origins: gt.map(() => 'gt'), view: 'orig', scene: split.scenes?.[s] };
    for (const a of textAugs) {
      for (const p of a.augment(base, rng.fork(textAugs.indexOf(a)))) {
        base = { ...base, captions: [...base.captions, ...p.captions], origins: [...base.origins, ...p.origins] };
      }
    }
    const views: Pair[] = [base];
    imageAugs.forEach((a, k) => views.push(...a.augment(base, rng.fork(100 + k))));
    sources.push({ views });
  }
  let alignment: AlignmentReport | undefined;
  if (o.scorer && (o.quantile ?? 0) > 0) alignment = await alignmentFilter(sources, o.scorer, o.quantile!);
  const c = countPool(sources);
  return { names, sources, stats: { ...c, ms: Math.round(performance.now() - t0) }, alignment };
}

export interface AugmentedBatch {
  /** uint8 RGB per row */
  images: Uint8Array[];
  views: string[];
  captions: string[];
  origins: string[];
  /** caption -> batch row */
  owner: Int32Array;
}

/**
 * One step's batch from the pool (rng seeded per step, so a resumed run draws the same): per row, a view (an
 * augmented one with probability pImage), k ground-truth captions of that view (without replacement) and up to
 * `extra` augmented captions (non-ground-truth origins; siblings are ground-truth captions not already drawn).
 */
export function sampleAugmentedBatch(pool: AugmentPool, rows: ArrayLike<number>, k: number, extra: number, pImage: number, rng: Rng): AugmentedBatch {
  const images: Uint8Array[] = [];
  const views: string[] = [];
  const captions: string[] = [];
  const origins: string[] = [];
  const owner: number[] = [];
  for (let r = 0; r < rows.length; r++) {
    const src = pool.sources[rows[r]];
    const u = rng.next();
    const pickAug = rng.next();
    const view = src.views.length > 1 && u < pImage ? src.views[1 + Math.floor(pickAug * (src.views.length - 1))] : src.views[0];
    images.push(view.image);
    views.push(view.view);
    const gtIdx = view.origins.map((o, i) => (o === 'gt' ? i : -1)).filter((i) => i >= 0);
    if (gtIdx.length === 0) throw new Error(`source ${rows[r]} has no ground-truth captions`);
    rng.shuffle(gtIdx);
    const chosen = new Set<string>();
    for (const i of gtIdx.slice(0, k)) {
      captions.push(view.captions[i]);
      origins.push('gt');
      owner.push(r);
      chosen.add(view.captions[i]);
    }
    const augIdx = rng.shuffle(view.origins.map((o, i) => (o !== 'gt' ? i : -1)).filter((i) => i >= 0));
    let added = 0;
    for (const i of augIdx) {
      if (added >= extra) break;
      if (chosen.has(view.captions[i])) continue;
      captions.push(view.captions[i]);
      origins.push(view.origins[i]);
      owner.push(r);
      chosen.add(view.captions[i]);
      added++;
    }
  }
  return { images, views, captions, origins, owner: Int32Array.from(owner) };
}
