/**
 * Robust recall of a model on a data split, in memory: what `manyfold eval --attack` and `manyfold experiment`
 * measure. It is the probe runner over the in-memory rank source (the same numbers the live index and a remote
 * target give on the same model and items), plus what only an offline evaluation can add:
 * - sanity checks on the attacks (checks.ts), with a gradient probe of the model and a PGD rerun at half the steps;
 * - adversarial examples for the HTML report (clean and adversarial image, the edited caption);
 * - the papers' protocol on request (`gallery: 'attacked'`: queries and gallery adversarial).
 */
import type { DatasetSplit } from '../../data/types.js';
import type { Encoder } from '../../model/encoder.js';
import type { LabelLexicon } from '../../attacks/constraints/labels.js';
import { gradientProbe } from './gradient-probe.js';
import { quantize } from '../../util/quantize.js';
import { attackLabel, type ProbeAttackSpec } from './catalog.js';
import { runSanityChecks, type SanityCheck, type SanityOptions, type StepsRerun } from './checks.js';
import { runRobustProbe, type GalleryMode, type ProbeProgress, type RobustProbeReport, type Surrogate } from './runner.js';
import { probeFromSplit } from './split.js';
import { MemoryRankSource } from './sources/memory.js';

export interface RobustEvalOptions {
  attacks: readonly ProbeAttackSpec[];
  /** the first `limit` images of the split and their captions (default: all) */
  limit?: number;
  seed?: number;
  /** images per chunk of attack work (default 64; part of the protocol: attack seeds are per chunk) */
  chunkImages?: number;
  /** the attack goal: every gold item leaves the top-goalK (default 10, the largest reported K, so early stopping
   * never weakens R@5 / R@10) */
  goalK?: number;
  resamples?: number;
  textLabels?: LabelLexicon;
  gallery?: GalleryMode;
  /** the model transfer attacks are crafted on */
  surrogate?: Surrogate;
  /** sanity checks (default on) */
  sanity?: boolean | SanityOptions;
  /** whether the model was trained with a defense; undefined = unknown (the undefended-strength check is skipped) */
  defended?: boolean;
  /** adversarial examples kept for the HTML report (default 4) */
  examples?: number;
  /** the model's name in the report (default its version) */
  modelName?: string;
  signal?: AbortSignal;
  onProgress?: (p: ProbeProgress) => void;
}

export interface AdversarialExample {
  label: string;
  imageId: string;
  size: number;
  /** [S, S, 3] pixels in [0,1] */
  clean: Float32Array;
  /** the 8-bit adversarial image as sent (null: the attack left images alone) */
  adv: Float32Array | null;
  linf255: number;
  /** 0-based rank of the gold item among the image query's results, clean and attacked */
  cleanRank: number | null;
  advRank: number | null;
  captionOriginal: string;
  captionAdversarial: string | null;
}

export type RobustEvalReport = RobustProbeReport & { sanity: { warnings: number; checks: SanityCheck[] } };

export interface RobustEvalResult {
  report: RobustEvalReport;
  examples: AdversarialExample[];
  /** the evaluated captions and each text attack's final captions by label (audits of what the attacks changed) */
  captions: { original: string[]; byAttack: Record<string, string[]> };
}

export async function evaluateRobust(encoder: Encoder, split: DatasetSplit, o: RobustEvalOptions): Promise<RobustEvalResult> {
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1)) throw new Error(`robust eval: limit must be a positive integer, got ${o.limit}`);
  if (split.size !== encoder.imageSize) throw new Error(`robust eval: split ${split.name} holds ${split.size}px images but the model expects ${encoder.imageSize}px`);
  if (o.surrogate && o.surrogate.encoder.config.image.size !== encoder.imageSize) {
    throw new Error(`robust eval: the surrogate ${o.surrogate.id} takes ${o.surrogate.encoder.config.image.size}px images, the model ${encoder.imageSize}px`);
  }
  const { queries, gallery } = probeFromSplit(split, o.limit);
  const source = await MemoryRankSource.create(encoder, gallery);
  const chunkImages = o.chunkImages ?? 64;
  const seed = o.seed ?? 0;
  const goalK = o.goalK ?? 10;
  const S = split.size;
  const per = S * S * 3;
  const nExamples = o.examples ?? 4;
  const firstChunk = Math.min(chunkImages, queries.ids.length);
  const outputs = new Map<string, { images: Float32Array | null; texts: string[] | null }>();
  const byAttack: Record<string, string[]> = {};
  const common = { topK: 10, goalK, seed, resamples: o.resamples, chunkImages, textLabels: o.textLabels, surrogate: o.surrogate, signal: o.signal };

  const report = await runRobustProbe({
    ...common,
    source,
    queries,
    attacks: o.attacks,
    gallery: o.gallery,
    keepRanks: true,
    onProgress: o.onProgress,
    onAttackOutput: (label, chunk, result) => {
      if (result.captions) {
        const texts = (byAttack[label] ??= [...queries.captions]);
        const first = chunk * chunkImages;
        const rows = queries.captionToImage.flatMap((img, c) => (img >= first && img < first + chunkImages ? [c] : []));
        rows.forEach((c, j) => (texts[c] = result.captions!.texts[j]));
      }
      if (chunk === 0) outputs.set(label, { images: result.images ? Float32Array.from(result.images.data.subarray(0, firstChunk * per)) : null, texts: result.captions?.texts ?? null });
    },
  });

  let checks: SanityCheck[] = [];
  if (o.sanity !== false) {
    o.signal?.throwIfAborted();
    const so: SanityOptions = typeof o.sanity === 'object' ? o.sanity : {};
    const probeN = Math.min(queries.ids.length, so.probeImages ?? 8);
    const pixels = Float32Array.from(gallery.images.subarray(0, probeN * per), (v) => v / 255);
    const paired = Array.from({ length: probeN }, (_, i) => queries.captions[queries.captionToImage.indexOf(i)]);
    const textEmb = await encoder.embedTextsMatrixAsync(paired);
    const gradient = await gradientProbe(encoder.model, pixels, probeN, S, textEmb, paired.map((_, i) => i), encoder.dim);
    let stepsRerun: StepsRerun | undefined;
    const pgds = o.attacks.filter((a) => a.name === 'pgd' && (a.eps ?? 0) > 0 && (a.steps ?? 10) >= 2);
    if (pgds.length && so.stepsCheck !== false) {
      // the same first-chunk queries and seed at full and at half the steps
      const spec = pgds.reduce((a, b) => ((b.eps ?? 0) > (a.eps ?? 0) ? b : a));
      const steps = spec.steps ?? 10;
      const fewer = Math.max(1, Math.floor(steps / 2));
      const sub = probeFromSplit(split, firstChunk).queries;
      const trR1 = async (s: number) => {
        const r = await runRobustProbe({ ...common, resamples: 1, source, queries: sub, attacks: [{ ...spec, steps: s }] });
        return r.attacks[0].tr?.recall.r1?.mean ?? NaN;
      };
      stepsRerun = { label: attackLabel(spec), steps, fewerSteps: fewer, r1Full: await trR1(steps), r1Fewer: await trR1(fewer), n: firstChunk };
    }
    checks = runSanityChecks({ report, defended: o.defended, gradient, stepsRerun, options: so });
  }

  const examples = nExamples > 0 ? pickExamples(report, outputs, queries, gallery.images, S, firstChunk, nExamples) : [];
  return {
    report: { ...report, ...(o.modelName ? { source: { ...report.source, name: o.modelName } } : {}), sanity: { warnings: checks.filter((c) => c.status === 'warn').length, checks } },
    examples,
    captions: { original: [...queries.captions], byAttack },
  };
}

/**
 * Examples from the first chunk: the image attack with the largest eps (one that also edited captions first), images
 * whose gold left the top 1 first.
 */
function pickExamples(
  report: RobustProbeReport,
  outputs: ReadonlyMap<string, { images: Float32Array | null; texts: string[] | null }>,
  queries: { ids: readonly string[]; captions: readonly string[]; captionToImage: readonly number[] },
  images: Uint8Array,
  S: number,
  firstChunk: number,
  n: number,
): AdversarialExample[] {
  const ranks = report.ranks!;
  const withImages = report.attacks.map((a, i) => ({ a, i, out: outputs.get(a.label) })).filter((x) => x.out?.images);
  const pool = withImages.some((x) => x.out!.texts) ? withImages.filter((x) => x.out!.texts) : withImages;
  const textOnly = report.attacks.map((a, i) => ({ a, i, out: outputs.get(a.label) })).filter((x) => x.out?.texts);
  const pick = pool.length ? pool.reduce((x, y) => ((y.a.spec.eps ?? 0) > (x.a.spec.eps ?? 0) ? y : x)) : textOnly[0];
  if (!pick) return [];
  const per = S * S * 3;
  const advTr = ranks.attacks[pick.i].tr;
  const flipped = (i: number) => ranks.clean.tr[i] === 0 && (advTr?.[i] ?? 0) >= 1;
  const order = Array.from({ length: firstChunk }, (_, i) => i).sort((x, y) => Number(flipped(y)) - Number(flipped(x)) || x - y);
  return order.slice(0, n).map((i) => {
    const clean = Float32Array.from(images.subarray(i * per, (i + 1) * per), (v) => v / 255);
    const adv = pick.out!.images ? Float32Array.from(quantize(pick.out!.images.subarray(i * per, (i + 1) * per)), (v) => v / 255) : null;
    let linf = 0;
    if (adv) for (let k = 0; k < per; k++) linf = Math.max(linf, Math.abs(adv[k] - clean[k]));
    // the image's first caption the attack changed (captions of a chunk are in image order)
    const own = queries.captionToImage.flatMap((img, c) => (img === i ? [c] : []));
    const edited = pick.out!.texts ? own.find((c) => pick.out!.texts![c] !== queries.captions[c]) : undefined;
    const cap = edited ?? own[0];
    return {
      label: pick.a.label,
      imageId: queries.ids[i],
      size: S,
      clean,
      adv,
      linf255: Math.round(linf * 255 * 100) / 100,
      cleanRank: ranks.clean.tr[i],
      advRank: advTr ? advTr[i] : ranks.clean.tr[i],
      captionOriginal: queries.captions[cap],
      captionAdversarial: pick.out!.texts ? pick.out!.texts[cap] : null,
    };
  });
}

const r1 = (c: { recall: Record<string, { mean: number }> } | undefined): number | undefined => c?.recall.r1?.mean;

/** Mean of clean R@1 image->text and text->image: the clean figure defenses are compared on. */
export function cleanMeanR1(report: Pick<RobustProbeReport, 'clean'>): number {
  return (r1(report.clean.tr)! + r1(report.clean.ir)!) / 2;
}

/**
 * Mean R@1 of both directions under Co-Attack and SGA (every budget evaluated): the multimodal figure the defense
 * goals are stated in; null when the report has neither attack.
 */
export function multimodalMeanR1(report: Pick<RobustProbeReport, 'attacks'>): number | null {
  const v = report.attacks.filter((a) => a.name === 'coattack' || a.name === 'sga').flatMap((a) => [r1(a.tr), r1(a.ir)].filter((x): x is number => x !== undefined));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}
