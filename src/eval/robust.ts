/**
 * Robust retrieval evaluation: recall under attack, attack success rate, worst case across attacks, bootstrap
 * CIs, query counts and wall time, with the protocol stated next to every number.
 *
 * One library entry point, `evaluateRobust(encoder, data, options)`, used by `manyfold eval --attack ...` and by
 * the API's probe. `data` is an in-memory DatasetSplit or a plain list of image/captions pairs; progress is
 * reported through `onProgress`, cancellation through an AbortSignal (checked between chunks of images).
 *
 * Protocol
 * - Queries: every image (TR, image->text) and every caption (IR, text->image) of the data (after `limit`,
 *   which keeps the FIRST `limit` images and their captions; the gallery is cut the same way).
 * - side 'query' (default; the live-index scenario): only the queries are adversarial, the gallery is clean:
 *   TR ranks adversarial images against clean captions, IR ranks adversarial captions against clean images.
 *   An attack that perturbs only one modality leaves the other direction at its clean value (`attacked` says
 *   which direction an attack touched).
 * - side 'both' (the papers' protocol): adversarial images AND adversarial captions form the similarity matrix,
 *   so the gallery of each direction is adversarial too.
 * - Inputs are crafted per chunk of `chunkImages` images with all their captions (SGA attacks an image's caption
 *   set together), against the clean gallery of the whole (limited) data.
 *   Attack seed of chunk c = seed + 1000003*c (so a result is reproducible from seed + chunkImages). The goal
 *   is "every gold item leaves the top-goalK" (default 10, the largest reported K).
 * - Recall: the Karpathy protocol of eval/recall.ts (pessimistic ties). ASR (SGA's definition): among the
 *   queries that are correct at R@K on clean input, the share that fail after the attack, in percent.
 * - Worst case per query (AutoAttack-style): for each eps, a query counts as a hit only when it is a hit under
 *   EVERY listed attack at that eps (eps-free text attacks join every group).
 * - CIs: percentile bootstrap over queries (`resamples`, seed 0) for recall and ASR.
 */
import type { DatasetSplit } from '../data/types.js';
import type { Encoder } from '../model/encoder.js';
import type { LabelLexicon } from '../attacks/constraints/labels.js';
import { similarityMatrix } from '../model/encoder.js';
import {
  attackByName,
  embedImageRows,
  embedTextRows,
  localOracle,
  splitTargets,
  type AttackResult,
  type ScoreOracle,
} from '../attacks/index.js';
import { bootstrapMeanCI } from './bootstrap.js';
import { attackSuccessRate, worstCase } from './robust/metrics.js';

export { attackSuccessRate };
import { computeRecall, type DirectionRecall, type GroundTruth } from './recall.js';
import { CLEAN_PROTOCOL, round2, type CleanEvalSummary } from './evaluate.js';
import { gradientProbe, runSanityChecks, type SanityCheck, type SanityOptions } from './sanity.js';

// ---------------------------------------------------------------------------------------------- public types

export type RobustSide = 'query' | 'both';

/** The attacks `evaluateRobust` knows. 'blackbox' = Square (images) + score-guided word swaps (captions). */
export type RobustAttackKind = 'pgd' | 'text' | 'charedit' | 'coattack' | 'sga' | 'blackbox' | 'transfer';

export const ROBUST_ATTACKS: readonly RobustAttackKind[] = ['pgd', 'text', 'charedit', 'coattack', 'sga', 'blackbox', 'transfer'];

/** Attacks that perturb images (and therefore run once per eps). */
const IMAGE_KINDS = new Set<RobustAttackKind>(['pgd', 'coattack', 'sga', 'blackbox', 'transfer']);

export interface RobustAttackSpec {
  kind: RobustAttackKind;
  /** transfer: the key of the surrogate in options.surrogates */
  surrogate?: string;
}

/** One image with its captions (the probe's list-of-pairs input). */
export interface RobustPair {
  /** RGB row-major [size, size, 3]: Uint8Array 0..255 or Float32Array in [0,1] */
  image: Uint8Array | Float32Array;
  captions: readonly string[];
  id?: string;
}

export interface RobustPairs {
  size: number;
  pairs: readonly RobustPair[];
  /** a name for the data in the report (default 'pairs') */
  name?: string;
}

export type RobustData = DatasetSplit | RobustPairs;

export interface RobustProgress {
  stage: 'clean' | 'attack' | 'sanity' | 'report';
  /** entry label, e.g. 'pgd@8' */
  label?: string;
  /** images done of the current entry / total */
  done: number;
  total: number;
  /** entries finished / planned */
  entriesDone: number;
  entriesTotal: number;
  elapsedMs: number;
}

export interface RobustEvalOptions {
  /** 'pgd' | 'text' | 'charedit' | 'coattack' | 'sga' | 'blackbox' | 'transfer:NAME' (NAME = key of surrogates) */
  attacks: readonly (string | RobustAttackSpec)[];
  /** image budgets in /255 units (default [2]) */
  eps255?: readonly number[];
  /** PGD steps (default 10) */
  steps?: number;
  /** PGD step size in /255 units (default 2.5 * eps / steps: 0.5/255 at eps 2, 10 steps, as the public codes) */
  stepSize255?: number;
  /** words changed per caption (default 1) */
  words?: number;
  /** text attacks may not swap a word for one with another label of this closed vocabulary (constraints/labels.ts);
   * absent = the paper's protocol (any WordNet lemma) */
  textLabels?: LabelLexicon;
  side?: RobustSide;
  /** keep the first `limit` images (and their captions) */
  limit?: number;
  seed?: number;
  /** images per attack chunk (default 64); part of the protocol: seeds are per chunk */
  chunkImages?: number;
  /** transfer surrogates by name (adversarial inputs crafted on them, evaluated on the target) */
  surrogates?: Readonly<Record<string, Encoder>>;
  /** recipe crafted on the surrogate (default 'sga', the strongest in transfer) */
  transferAttack?: 'pgd' | 'coattack' | 'sga';
  /** black-box budgets: queries per image (default 500) and per caption (default 100); oracle top-K (default 10) */
  blackbox?: { imageQueries?: number; textQueries?: number; topK?: number };
  /** the attacks' retrieval goal: every gold item leaves the top-goalK of the clean gallery (default 10, the
   * largest reported K, so captions and images ranked 2..10 are attacked too and early stopping never weakens
   * R@5/R@10) */
  goalK?: number;
  /** bootstrap resamples (default 1000) */
  resamples?: number;
  /** adversarial examples kept for the HTML report (default 4) */
  examples?: number;
  /** sanity checks (default on); false disables them */
  sanity?: boolean | SanityOptions;
  /** whether the model was trained with a defense; undefined = unknown (the undefended-strength check is skipped) */
  defended?: boolean;
  /** names of the model / data in the report */
  modelName?: string;
  signal?: AbortSignal;
  onProgress?: (p: RobustProgress) => void;
}

export interface Triple {
  r1: number;
  r5: number;
  r10: number;
}
export type CiTriple = { r1: [number, number]; r5: [number, number]; r10: [number, number] };

/** The protocol of one number set, repeated next to it. */
export interface EntryProtocol {
  side: RobustSide;
  threatModel: 'white-box' | 'black-box' | 'transfer';
  eps255: number | null;
  norm: 'linf' | null;
  steps: number | null;
  stepSize255: number | null;
  words: number | null;
  seed: number;
  split: string;
  nImages: number;
  nTexts: number;
  chunkImages: number;
  goal: string;
  surrogate?: string;
  queryBudget?: { perImage: number; perCaption: number; topK: number };
}

export interface RobustEntry {
  attack: RobustAttackKind;
  label: string;
  eps255: number | null;
  protocol: EntryProtocol;
  /** which directions the attack perturbed (an unattacked direction keeps its clean value under side 'query') */
  attacked: { tr: boolean; ir: boolean };
  tr: Triple;
  ir: Triple;
  /** sum of the six recalls (TR and IR at 1, 5, 10) */
  rsum: number;
  /** SGA's ASR in percent over the queries correct at R@K clean; `base` = how many those were */
  asr: { tr: Triple; ir: Triple; base: { tr: Triple; ir: Triple } };
  ci: { tr: CiTriple; ir: CiTriple; asr: { tr: CiTriple; ir: CiTriple } };
  /** model forward passes (white-box) or oracle queries (black-box) spent */
  queries: { total: number; perImage: number; perCaption: number };
  perturbation: { linfMax255: number; l2Mean: number; wordsChangedMean: number; captionsChanged: number };
  /** share of queries the attack itself judged successful (goal: gold leaves the top-goalK of the clean gallery) */
  goalSuccess: { images: number | null; captions: number | null };
  wallSeconds: number;
}

export interface WorstEntry extends Omit<RobustEntry, 'attack' | 'queries' | 'perturbation' | 'goalSuccess' | 'wallSeconds' | 'protocol'> {
  /** entries whose per-query minimum this is */
  over: string[];
  protocol: Omit<EntryProtocol, 'threatModel'> & { threatModel: 'worst-case' };
}

export interface RobustSettings {
  side: RobustSide;
  eps255: number[];
  steps: number;
  stepSize255: number | 'auto(2.5*eps/steps)';
  words: number;
  /** the label lexicon text substitutes must preserve, or null (any WordNet lemma, the paper's protocol) */
  textLabels: string | null;
  seed: number;
  split: string;
  limit: number | null;
  nImages: number;
  nTexts: number;
  ks: number[];
  chunkImages: number;
  goalK: number;
  resamples: number;
  transferAttack: string;
  blackbox: { imageQueries: number; textQueries: number; topK: number };
  protocol: string;
}

export interface RobustReport {
  model: string;
  data: string;
  split: string;
  clean: { tr: CleanEvalSummary['tr']; ir: CleanEvalSummary['ir'] };
  nImages: number;
  nTexts: number;
  protocol: string;
  robust: RobustSettings;
  attacks: Record<string, RobustEntry>;
  worst: Record<string, WorstEntry>;
  sanity: { warnings: number; checks: SanityCheck[] };
  seconds: number;
}

/** Mean of clean R@1 image->text and text->image: the clean figure defenses are compared on. */
export function cleanMeanR1(report: Pick<RobustReport, 'clean'>): number {
  return (report.clean.tr.r1 + report.clean.ir.r1) / 2;
}

/** Mean R@1 of both directions under Co-Attack and SGA (every budget evaluated): the multimodal figure the defense
 * goals are stated in; null when the report has neither attack. */
export function multimodalMeanR1(report: Pick<RobustReport, 'attacks'>): number | null {
  const v = Object.entries(report.attacks)
    .filter(([label]) => /^(coattack|sga)@/.test(label))
    .flatMap(([, e]) => [e.tr.r1, e.ir.r1]);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

export interface AdversarialExample {
  label: string;
  eps255: number | null;
  imageIndex: number;
  imageId: string;
  size: number;
  clean: Float32Array;
  adv: Float32Array | null;
  linf255: number;
  cleanRank: number;
  advRank: number;
  captionOriginal: string | null;
  captionAdversarial: string | null;
  captionLabel: string | null;
  top1Clean: string;
  top1Adv: string;
}

export interface RobustEvalResult {
  report: RobustReport;
  examples: AdversarialExample[];
  /** the evaluated captions (after `limit`) and each caption attack's adversarial versions, by entry label, for
   * audits of what the attacks changed (scripts/text-attack-audit.ts); not part of the report */
  captions: { original: string[]; byAttack: Record<string, string[]> };
}

// ---------------------------------------------------------------------------------------------- data

/** The normalised view of the evaluated data. */
interface EvalData {
  name: string;
  size: number;
  count: number;
  /** float pixels [count, S, S, 3] in [0,1] */
  pixels: Float32Array;
  imageIds: string[];
  captions: string[];
  gt: GroundTruth & { captionToImage: Int32Array; imageToCaptions: number[][] };
}

function isSplit(d: RobustData): d is DatasetSplit {
  return (d as DatasetSplit).captionToImage !== undefined;
}

/** Normalise a split or a list of pairs, keeping the first `limit` images and their captions. */
export function prepareData(data: RobustData, limit?: number): EvalData {
  const size = data.size;
  const per = size * size * 3;
  let images: { get: () => Uint8Array | Float32Array }[] = [];
  let captionsOf: string[][] = [];
  let ids: string[] = [];
  let name: string;
  if (isSplit(data)) {
    name = data.name;
    images = Array.from({ length: data.count }, (_, i) => ({ get: () => data.images.subarray(i * per, (i + 1) * per) }));
    captionsOf = data.imageToCaptions.map((cs) => cs.map((c) => data.captions[c]));
    ids = data.imageIds.slice();
  } else {
    name = data.name ?? 'pairs';
    data.pairs.forEach((p, i) => {
      if (p.image.length !== per) throw new Error(`robust eval: pair ${i} has ${p.image.length} values, expected ${size}x${size}x3 = ${per}`);
    });
    images = data.pairs.map((p) => ({ get: () => p.image }));
    captionsOf = data.pairs.map((p) => p.captions.slice());
    ids = data.pairs.map((p, i) => p.id ?? String(i));
  }
  const n = limit !== undefined ? Math.min(limit, images.length) : images.length;
  if (n < 1) throw new Error('robust eval: no images to evaluate');
  const pixels = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    const src = images[i].get();
    if (src instanceof Uint8Array) for (let j = 0; j < per; j++) pixels[i * per + j] = src[j] / 255;
    else pixels.set(src, i * per);
  }
  const captions: string[] = [];
  const c2i: number[] = [];
  const i2c: number[][] = [];
  for (let i = 0; i < n; i++) {
    if (captionsOf[i].length === 0) throw new Error(`robust eval: image ${ids[i]} has no caption`);
    i2c.push([]);
    for (const c of captionsOf[i]) {
      i2c[i].push(captions.length);
      c2i.push(i);
      captions.push(c);
    }
  }
  return { name, size, count: n, pixels, imageIds: ids.slice(0, n), captions, gt: { captionToImage: Int32Array.from(c2i), imageToCaptions: i2c } };
}

// ---------------------------------------------------------------------------------------------- helpers

const KS = [1, 5, 10] as const;

function parseSpecs(attacks: RobustEvalOptions['attacks']): RobustAttackSpec[] {
  const out: RobustAttackSpec[] = [];
  for (const a of attacks) {
    if (typeof a !== 'string') {
      out.push(a);
      continue;
    }
    const [head, ...rest] = a.split(':');
    const kind = head.trim() as RobustAttackKind;
    if (!ROBUST_ATTACKS.includes(kind)) throw new Error(`unknown attack '${a}' (expected ${ROBUST_ATTACKS.join(', ')}; transfer as transfer:NAME)`);
    if (kind === 'transfer') {
      const s = rest.join(':').trim();
      if (!s) throw new Error(`attack '${a}': transfer needs a surrogate, as transfer:MODEL`);
      out.push({ kind, surrogate: s });
    } else {
      if (rest.length) throw new Error(`attack '${a}': only transfer takes an argument`);
      out.push({ kind });
    }
  }
  if (out.length === 0) throw new Error('robust eval: no attacks listed');
  return out;
}

function triple(d: DirectionRecall): Triple {
  return { r1: round2(d.recall[1]), r5: round2(d.recall[5]), r10: round2(d.recall[10]) };
}

function ciOf(h: Uint8Array, resamples: number): [number, number] {
  const ci = bootstrapMeanCI(h, { seed: 0, scale: 100, resamples });
  return [round2(ci.lo), round2(ci.hi)];
}

function ciTriple(d: DirectionRecall, resamples: number): CiTriple {
  return { r1: ciOf(d.hits[1], resamples), r5: ciOf(d.hits[5], resamples), r10: ciOf(d.hits[10], resamples) };
}

/** Per-query worst case: the maximum rank across attacks (a hit only when a hit under every attack). */
export function worstRanks(ranks: readonly Int32Array[]): Int32Array {
  if (ranks.length === 0) throw new Error('worstRanks: no attacks');
  if (ranks.some((r) => r.length !== ranks[0].length)) throw new Error('worstRanks: rank vectors differ in length');
  return Int32Array.from(worstCase(ranks.map((r) => Array.from(r))) as number[]);
}

/** DirectionRecall from ranks (same definition as recall.ts). */
export function directionFromRanks(rank: Int32Array, ks: readonly number[] = KS): DirectionRecall {
  const recall: Record<number, number> = {};
  const hits: Record<number, Uint8Array> = {};
  for (const k of ks) {
    const h = new Uint8Array(rank.length);
    let s = 0;
    for (let q = 0; q < rank.length; q++) if (rank[q] < k) (h[q] = 1), s++;
    hits[k] = h;
    recall[k] = rank.length ? (100 * s) / rank.length : 0;
  }
  return { recall, rank, hits };
}

interface Scored {
  tr: Triple;
  ir: Triple;
  rsum: number;
  asr: RobustEntry['asr'];
  ci: RobustEntry['ci'];
}

function score(clean: { tr: DirectionRecall; ir: DirectionRecall }, tr: DirectionRecall, ir: DirectionRecall, resamples: number): Scored {
  const asrDir = (c: DirectionRecall, a: DirectionRecall) => {
    const r = KS.map((k) => attackSuccessRate(c.hits[k], a.hits[k]));
    const ci = r.map((x): [number, number] => (x.base === 0 ? [0, 0] : ciOf(x.fail, resamples)));
    return {
      asr: { r1: round2(r[0].asr), r5: round2(r[1].asr), r10: round2(r[2].asr) },
      base: { r1: r[0].base, r5: r[1].base, r10: r[2].base },
      ci: { r1: ci[0], r5: ci[1], r10: ci[2] },
    };
  };
  const at = asrDir(clean.tr, tr);
  const ai = asrDir(clean.ir, ir);
  const t = triple(tr);
  const i = triple(ir);
  return {
    tr: t,
    ir: i,
    rsum: round2(t.r1 + t.r5 + t.r10 + i.r1 + i.r5 + i.r10),
    asr: { tr: at.asr, ir: ai.asr, base: { tr: at.base, ir: ai.base } },
    ci: { tr: ciTriple(tr, resamples), ir: ciTriple(ir, resamples), asr: { tr: at.ci, ir: ai.ci } },
  };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(() => r(), 0));

function chunkSeed(seed: number, c: number): number {
  return (seed + 1000003 * c) % 2147483647;
}

/** Largest |adv - clean| over images, and mean L2. */
function perturbationStats(adv: Float32Array | null, clean: Float32Array, n: number): { linfMax: number; l2Mean: number } {
  if (!adv) return { linfMax: 0, l2Mean: 0 };
  const per = clean.length / n;
  let mx = 0;
  let l2 = 0;
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let k = i * per; k < (i + 1) * per; k++) {
      const d = Math.abs(adv[k] - clean[k]);
      if (d > mx) mx = d;
      ss += d * d;
    }
    l2 += Math.sqrt(ss);
  }
  return { linfMax: mx, l2Mean: l2 / n };
}

function top1(sims: Float32Array, nT: number, i: number): number {
  let best = -Infinity;
  let arg = 0;
  for (let t = 0; t < nT; t++) {
    const v = sims[i * nT + t];
    if (v > best) (best = v), (arg = t);
  }
  return arg;
}

// ---------------------------------------------------------------------------------------------- main

/**
 * Robust recall of `encoder` on `data` under the listed attacks. See the file comment for the protocol.
 * Throws the signal's reason when `options.signal` aborts (checked between chunks of `chunkImages` images).
 */
export async function evaluateRobust(encoder: Encoder, data: RobustData, options: RobustEvalOptions): Promise<RobustEvalResult> {
  const t0 = performance.now();
  const signal = options.signal;
  signal?.throwIfAborted();
  const specs = parseSpecs(options.attacks);
  const eps255 = [...(options.eps255 ?? [2])];
  for (const e of eps255) if (!(Number.isFinite(e) && e >= 0 && e <= 255)) throw new Error(`robust eval: eps must be in [0, 255] (/255 units), got ${e}`);
  const steps = options.steps ?? 10;
  if (!(Number.isInteger(steps) && steps >= 0)) throw new Error(`robust eval: steps must be an integer >= 0, got ${steps}`);
  const words = options.words ?? 1;
  if (!(Number.isInteger(words) && words >= 0)) throw new Error(`robust eval: words must be an integer >= 0, got ${words}`);
  const wordBudget = { maxWordsChanged: words, labels: options.textLabels };
  const side = options.side ?? 'query';
  if (side !== 'query' && side !== 'both') throw new Error(`robust eval: side must be 'query' or 'both', got ${String(side)}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`robust eval: seed must be a non-negative integer, got ${seed}`);
  const chunk = options.chunkImages ?? 64;
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new Error(`robust eval: chunkImages must be a positive integer`);
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 1)) throw new Error(`robust eval: limit must be a positive integer`);
  const resamples = options.resamples ?? 1000;
  const goalK = options.goalK ?? 10;
  if (!(Number.isInteger(goalK) && goalK >= 1)) throw new Error(`robust eval: goalK must be a positive integer`);
  const transferAttack = options.transferAttack ?? 'sga';
  const bb = { imageQueries: options.blackbox?.imageQueries ?? 500, textQueries: options.blackbox?.textQueries ?? 100, topK: options.blackbox?.topK ?? 10 };
  const nExamples = options.examples ?? 4;
  for (const s of specs) {
    if (s.kind === 'transfer') {
      const sur = options.surrogates?.[s.surrogate!];
      if (!sur) throw new Error(`transfer:${s.surrogate}: no such surrogate (options.surrogates has ${Object.keys(options.surrogates ?? {}).join(', ') || 'none'})`);
      if (sur.imageSize !== encoder.imageSize) throw new Error(`transfer:${s.surrogate}: surrogate takes ${sur.imageSize}px images, the target ${encoder.imageSize}px`);
    }
  }

  const d = prepareData(data, options.limit);
  if (d.size !== encoder.imageSize) throw new Error(`robust eval: data holds ${d.size}px images but the model expects ${encoder.imageSize}px`);
  const model = encoder.model;
  const tokenizer = encoder.tokenizer;
  const E = encoder.dim;
  const nI = d.count;
  const nT = d.captions.length;
  const per = d.size * d.size * 3;
  const stepFor = (eps: number) => (options.stepSize255 ?? (steps > 0 ? (2.5 * eps) / steps : 0)) / 255;

  // plan entries
  const plan: { spec: RobustAttackSpec; eps: number | null; label: string }[] = [];
  const labelOf = (s: RobustAttackSpec) => (s.kind === 'transfer' ? `transfer:${s.surrogate}` : s.kind);
  for (const s of specs) {
    if (IMAGE_KINDS.has(s.kind)) for (const e of eps255) plan.push({ spec: s, eps: e, label: `${labelOf(s)}@${e}` });
    else plan.push({ spec: s, eps: null, label: labelOf(s) });
  }
  const labels = new Set<string>();
  for (const p of plan) {
    if (labels.has(p.label)) throw new Error(`robust eval: attack ${p.label} listed twice`);
    labels.add(p.label);
  }
  const progress = (p: Omit<RobustProgress, 'elapsedMs' | 'entriesTotal'>) =>
    options.onProgress?.({ ...p, entriesTotal: plan.length, elapsedMs: performance.now() - t0 });

  // clean
  progress({ stage: 'clean', done: 0, total: nI, entriesDone: 0 });
  const cleanImg = embedImageRows(model, d.pixels, nI, d.size);
  const cleanTxt = embedTextRows(model, tokenizer, d.captions);
  const cleanSims = similarityMatrix(cleanImg, cleanTxt, E);
  const clean = computeRecall(cleanSims, nI, nT, d.gt);
  const cleanSummary = {
    tr: { ...triple(clean.tr), r1ci: ciOf(clean.tr.hits[1], resamples) },
    ir: { ...triple(clean.ir), r1ci: ciOf(clean.ir.hits[1], resamples) },
  };
  progress({ stage: 'clean', done: nI, total: nI, entriesDone: 0 });

  // surrogate clean embeddings (transfer)
  const surrogateEmb = new Map<string, { img: Float32Array; txt: Float32Array }>();
  const surrogateFor = (name: string) => {
    let s = surrogateEmb.get(name);
    if (!s) {
      const enc = options.surrogates![name];
      s = { img: embedImageRows(enc.model, d.pixels, nI, d.size), txt: embedTextRows(enc.model, enc.tokenizer, d.captions) };
      surrogateEmb.set(name, s);
    }
    return s;
  };

  // black-box oracles over the target's clean galleries
  let oracles: { image: ScoreOracle; text: ScoreOracle } | undefined;
  const oraclesFor = () =>
    (oracles ??= {
      image: localOracle({ encoder: model, tokenizer, gallery: cleanTxt, topK: bb.topK }),
      text: localOracle({ encoder: model, tokenizer, gallery: cleanImg, topK: bb.topK }),
    });

  // chunks: images [s, e) and their captions
  const chunks: { images: number[]; captions: number[] }[] = [];
  for (let s = 0; s < nI; s += chunk) {
    const images = Array.from({ length: Math.min(chunk, nI - s) }, (_, k) => s + k);
    chunks.push({ images, captions: images.flatMap((i) => d.gt.imageToCaptions[i]) });
  }
  const batchOf = (c: { images: number[]; captions: number[] }) => {
    const s = c.images[0];
    const local = new Map(c.images.map((g, k) => [g, k]));
    return {
      images: d.pixels.subarray(s * per, (s + c.images.length) * per),
      size: d.size,
      captions: c.captions.map((t) => d.captions[t]),
      captionToImage: c.captions.map((t) => local.get(d.gt.captionToImage[t])!),
    };
  };

  const textCache = new Map<string, { texts: string[]; queries: number[]; success: boolean[]; wordsChanged: number[] }>();
  const entries: Record<string, RobustEntry> = {};
  const ranksByLabel = new Map<string, { tr: Int32Array; ir: Int32Array; eps: number | null }>();
  const examples: AdversarialExample[] = [];
  const exampleCandidates: { label: string; eps: number | null; adv: Float32Array; trRank: Int32Array; sims: Float32Array }[] = [];
  const captionSources: { label: string; texts: string[] }[] = [];
  const stepsSanity: { label: string; eps: number; spec: RobustAttackSpec } | undefined = plan.find((p) => p.spec.kind === 'pgd' && p.eps !== null && p.eps > 0)
    ? (() => {
        const ps = plan.filter((p) => p.spec.kind === 'pgd' && p.eps !== null);
        const best = ps.reduce((a, b) => (b.eps! > a.eps! ? b : a));
        return { label: best.label, eps: best.eps!, spec: best.spec };
      })()
    : undefined;

  /** run one attack kind on one chunk; returns adversarial pixels and/or captions (null = unperturbed) */
  const runChunk = async (
    spec: RobustAttackSpec,
    eps: number | null,
    c: { images: number[]; captions: number[] },
    ci: number,
    stepsOverride?: number,
  ): Promise<{ images: Float32Array | null; texts: string[] | null; imgQueries: number; txtQueries: number; imgSuccess: boolean[] | null; txtSuccess: boolean[] | null; wordsChanged: number[] | null }> => {
    const batch = batchOf(c);
    const cs = chunkSeed(seed, ci);
    const targetsFor = (img: Float32Array, txt: Float32Array) =>
      splitTargets({ imageEmb: img, textEmb: txt, dim: img.length / nI, captionToImage: d.gt.captionToImage, imageToCaptions: d.gt.imageToCaptions, batchImages: c.images, batchCaptions: c.captions, k: goalK });
    const st = stepsOverride ?? steps;
    const pgdBudget = eps !== null ? { eps: eps / 255, steps: st, stepSize: stepFor(eps), seed: cs } : { seed: cs };
    const sum = (a?: number[]) => (a ?? []).reduce((x, y) => x + y, 0);
    const fromResult = (r: AttackResult) => ({
      images: r.images?.data ?? null,
      texts: r.captions?.texts ?? null,
      imgQueries: sum(r.images?.queries),
      txtQueries: sum(r.captions?.queries),
      imgSuccess: r.images?.success ?? null,
      txtSuccess: r.captions?.success ?? null,
      wordsChanged: r.captions?.wordsChanged ?? null,
    });
    const env = { encoder: model, tokenizer };
    const targets = targetsFor(cleanImg, cleanTxt);
    switch (spec.kind) {
      case 'pgd':
        return fromResult(await attackByName('pgd', pgdBudget).run({ ...batch, targets }, env));
      case 'coattack':
        return fromResult(await attackByName('coattack', { ...pgdBudget, ...wordBudget }).run({ ...batch, targets }, env));
      case 'sga':
        return fromResult(await attackByName('sga', { ...pgdBudget, ...wordBudget }).run({ ...batch, targets }, env));
      case 'text':
      case 'charedit':
        return fromResult(await attackByName(spec.kind, { ...wordBudget, seed: cs }).run({ ...batch, targets }, env));
      case 'transfer': {
        const sur = options.surrogates![spec.surrogate!];
        const se = surrogateFor(spec.surrogate!);
        const opts = transferAttack === 'pgd' ? pgdBudget : { ...pgdBudget, ...wordBudget };
        const r = await attackByName(transferAttack, opts).run({ ...batch, targets: targetsFor(se.img, se.txt) }, { encoder: sur.model, tokenizer: sur.tokenizer });
        return fromResult(r);
      }
      case 'blackbox': {
        const o = oraclesFor();
        const ri = await attackByName('blackbox-image', { eps: eps! / 255, maxQueries: bb.imageQueries, seed: cs }).run(
          { images: batch.images, size: batch.size, targets: { k: goalK, imageGoldIds: c.images.map((i) => d.gt.imageToCaptions[i]) } },
          { oracle: o.image },
        );
        const key = `blackbox#${ci}`;
        let t = textCache.get(key);
        if (!t) {
          const rt = await attackByName('blackbox-text', { ...wordBudget, maxQueries: bb.textQueries, seed: cs }).run(
            { captions: batch.captions, targets: { k: goalK, captionGoldIds: c.captions.map((x) => [d.gt.captionToImage[x]]) } },
            { oracle: o.text },
          );
          t = { texts: rt.captions!.texts, queries: rt.captions!.queries, success: rt.captions!.success, wordsChanged: rt.captions!.wordsChanged };
          textCache.set(key, t);
        }
        return {
          images: ri.images!.data,
          texts: t.texts,
          imgQueries: sum(ri.images!.queries),
          txtQueries: sum(t.queries),
          imgSuccess: ri.images!.success,
          txtSuccess: t.success,
          wordsChanged: t.wordsChanged,
        };
      }
    }
  };

  let entriesDone = 0;
  for (const p of plan) {
    signal?.throwIfAborted();
    const started = performance.now();
    const { spec, eps, label } = p;
    let advImgEmb: Float32Array | null = null;
    let advTxtEmb: Float32Array | null = null;
    let advTexts: string[] | null = null;
    let advPixels: Float32Array | null = null;
    let imgQ = 0;
    let txtQ = 0;
    let imgSucc = 0;
    let imgJudged = 0;
    let txtSucc = 0;
    let txtJudged = 0;
    let wordsSum = 0;
    let captionsChanged = 0;
    for (let ci = 0; ci < chunks.length; ci++) {
      signal?.throwIfAborted();
      progress({ stage: 'attack', label, done: chunks[ci].images[0], total: nI, entriesDone });
      const c = chunks[ci];
      const r = await runChunk(spec, eps, c, ci);
      if (r.images) {
        advImgEmb ??= Float32Array.from(cleanImg);
        advPixels ??= Float32Array.from(d.pixels); // perturbation stats and examples
        const emb = embedImageRows(model, r.images, c.images.length, d.size);
        advImgEmb.set(emb, c.images[0] * E);
        advPixels!.set(r.images, c.images[0] * per);
      }
      if (r.texts) {
        advTexts ??= d.captions.slice();
        advTxtEmb ??= Float32Array.from(cleanTxt);
        const emb = embedTextRows(model, tokenizer, r.texts);
        c.captions.forEach((t, k) => {
          advTexts![t] = r.texts![k];
          advTxtEmb!.set(emb.subarray(k * E, (k + 1) * E), t * E);
          if (r.texts![k] !== d.captions[t]) captionsChanged++;
        });
      }
      imgQ += r.imgQueries;
      txtQ += r.txtQueries;
      if (r.imgSuccess) (imgSucc += r.imgSuccess.filter(Boolean).length), (imgJudged += r.imgSuccess.length);
      if (r.txtSuccess) (txtSucc += r.txtSuccess.filter(Boolean).length), (txtJudged += r.txtSuccess.length);
      if (r.wordsChanged) wordsSum += r.wordsChanged.reduce((a, b) => a + b, 0);
      await tick();
    }
    progress({ stage: 'attack', label, done: nI, total: nI, entriesDone });

    // recall under attack
    const imgQ_ = advImgEmb ?? cleanImg;
    const txtQ_ = advTxtEmb ?? cleanTxt;
    let tr: DirectionRecall;
    let ir: DirectionRecall;
    let trSims: Float32Array;
    if (side === 'both') {
      trSims = advImgEmb || advTxtEmb ? similarityMatrix(imgQ_, txtQ_, E) : cleanSims;
      const rr = computeRecall(trSims, nI, nT, d.gt);
      tr = rr.tr;
      ir = rr.ir;
    } else {
      trSims = advImgEmb ? similarityMatrix(advImgEmb, cleanTxt, E) : cleanSims;
      tr = advImgEmb ? computeRecall(trSims, nI, nT, d.gt).tr : clean.tr;
      ir = advTxtEmb ? computeRecall(similarityMatrix(cleanImg, advTxtEmb, E), nI, nT, d.gt).ir : clean.ir;
    }
    ranksByLabel.set(label, { tr: tr.rank, ir: ir.rank, eps });
    const scored = score(clean, tr, ir, resamples);
    const pert = perturbationStats(advPixels, d.pixels, nI);
    const threat: EntryProtocol['threatModel'] = spec.kind === 'blackbox' ? 'black-box' : spec.kind === 'transfer' ? 'transfer' : 'white-box';
    const isImage = eps !== null;
    const hasText = spec.kind !== 'pgd' && !(spec.kind === 'transfer' && transferAttack === 'pgd');
    const entry: RobustEntry = {
      attack: spec.kind,
      label,
      eps255: eps,
      protocol: {
        side,
        threatModel: threat,
        eps255: eps,
        norm: isImage ? 'linf' : null,
        steps: isImage && spec.kind !== 'blackbox' ? steps : null,
        stepSize255: isImage && spec.kind !== 'blackbox' ? round4(stepFor(eps!) * 255) : null,
        words: hasText ? words : null,
        seed,
        split: d.name,
        nImages: nI,
        nTexts: nT,
        chunkImages: chunk,
        goal: `top${goalK}-leave (clean gallery)`,
        ...(spec.kind === 'transfer' ? { surrogate: `${spec.surrogate} (${options.surrogates![spec.surrogate!].version}; recipe ${transferAttack})` } : {}),
        ...(spec.kind === 'blackbox' ? { queryBudget: { perImage: bb.imageQueries, perCaption: bb.textQueries, topK: bb.topK } } : {}),
      },
      attacked: { tr: side === 'both' ? advImgEmb !== null || advTxtEmb !== null : advImgEmb !== null, ir: side === 'both' ? advImgEmb !== null || advTxtEmb !== null : advTxtEmb !== null },
      ...scored,
      queries: { total: imgQ + txtQ, perImage: round2(imgQ / nI), perCaption: round2(txtQ / nT) },
      perturbation: { linfMax255: round4(pert.linfMax * 255), l2Mean: round4(pert.l2Mean), wordsChangedMean: round4(wordsSum / nT), captionsChanged },
      goalSuccess: { images: imgJudged ? round2((100 * imgSucc) / imgJudged) : null, captions: txtJudged ? round2((100 * txtSucc) / txtJudged) : null },
      wallSeconds: round2((performance.now() - started) / 1000),
    };
    entries[label] = entry;
    if (advPixels && exampleCandidates.length < 16) exampleCandidates.push({ label, eps, adv: advPixels, trRank: tr.rank, sims: trSims });
    if (advTexts) captionSources.push({ label, texts: advTexts });
    entriesDone++;
    progress({ stage: 'attack', label, done: nI, total: nI, entriesDone });
  }

  // worst case per eps group
  const worst: Record<string, WorstEntry> = {};
  const epsFree = plan.filter((p) => p.eps === null).map((p) => p.label);
  const groups: { key: string; eps: number | null; labels: string[] }[] = [];
  if (eps255.length && plan.some((p) => p.eps !== null)) {
    for (const e of eps255) groups.push({ key: `${e}`, eps: e, labels: [...plan.filter((p) => p.eps === e).map((p) => p.label), ...epsFree] });
  } else groups.push({ key: 'all', eps: null, labels: epsFree });
  for (const g of groups) {
    if (g.labels.length === 0) continue;
    const rs = g.labels.map((l) => ranksByLabel.get(l)!);
    const tr = directionFromRanks(worstRanks(rs.map((r) => r.tr)));
    const ir = directionFromRanks(worstRanks(rs.map((r) => r.ir)));
    const s = score(clean, tr, ir, resamples);
    worst[g.key] = {
      label: `worst@${g.key}`,
      eps255: g.eps,
      over: g.labels,
      attacked: { tr: g.labels.some((l) => entries[l].attacked.tr), ir: g.labels.some((l) => entries[l].attacked.ir) },
      protocol: {
        side,
        threatModel: 'worst-case',
        eps255: g.eps,
        norm: g.eps !== null ? 'linf' : null,
        steps,
        stepSize255: g.eps !== null ? round4(stepFor(g.eps) * 255) : null,
        words,
        seed,
        split: d.name,
        nImages: nI,
        nTexts: nT,
        chunkImages: chunk,
        goal: 'per query: hit only if a hit under every attack listed in `over`',
      },
      ...s,
    };
  }

  // sanity checks
  let checks: SanityCheck[] = [];
  if (options.sanity !== false) {
    signal?.throwIfAborted();
    progress({ stage: 'sanity', done: 0, total: 1, entriesDone });
    const sOpts: SanityOptions = typeof options.sanity === 'object' ? options.sanity : {};
    const probeN = Math.min(nI, sOpts.probeImages ?? 8);
    const probeCaps = d.gt.imageToCaptions.slice(0, probeN).map((cs) => cs[0]);
    const grad = gradientProbe(model, d.pixels.subarray(0, probeN * per), probeN, d.size, cleanTxt, probeCaps, E);
    let stepsRerun: { label: string; steps: number; fewerSteps: number; r1Full: number; r1Fewer: number; n: number } | undefined;
    if (stepsSanity && steps >= 2 && sOpts.stepsCheck !== false) {
      const c0 = chunks[0];
      const fewer = Math.max(1, Math.floor(steps / 2));
      const r = await runChunk(stepsSanity.spec, stepsSanity.eps, c0, 0, fewer);
      const emb = embedImageRows(model, r.images!, c0.images.length, d.size);
      const q = Float32Array.from(cleanImg);
      q.set(emb, 0);
      const sims = similarityMatrix(q, cleanTxt, E); // image queries only, clean gallery
      const rr = computeRecall(sims, nI, nT, d.gt).tr.hits[1];
      const full = directionFromRanks(ranksByLabel.get(stepsSanity.label)!.tr).hits[1];
      let a = 0;
      let b = 0;
      for (const i of c0.images) (a += full[i]), (b += rr[i]);
      const n = c0.images.length;
      stepsRerun = { label: stepsSanity.label, steps, fewerSteps: fewer, r1Full: (100 * a) / n, r1Fewer: (100 * b) / n, n };
    }
    checks = runSanityChecks({
      clean: { tr: triple(clean.tr), ir: triple(clean.ir) },
      entries,
      defended: options.defended,
      gradient: grad,
      stepsRerun,
      nImages: nI,
      nTexts: nT,
      options: sOpts,
    });
    progress({ stage: 'sanity', done: 1, total: 1, entriesDone });
  }

  // examples: images whose TR hit@1 flipped under the strongest-eps image attack, with a caption attack's edit
  if (nExamples > 0 && exampleCandidates.length) {
    // the largest eps, preferring an attack that also changed captions (Co-Attack, SGA, black-box)
    const multi = exampleCandidates.filter((c) => captionSources.some((s) => s.label === c.label));
    const pool = multi.length ? multi : exampleCandidates;
    const cand = pool.reduce((a, b) => ((b.eps ?? 0) > (a.eps ?? 0) ? b : a));
    const order = Array.from({ length: nI }, (_, i) => i).sort((a, b) => {
      const fa = clean.tr.rank[a] < 1 && cand.trRank[a] >= 1 ? 0 : 1;
      const fb = clean.tr.rank[b] < 1 && cand.trRank[b] >= 1 ? 0 : 1;
      return fa - fb || a - b;
    });
    const capSrc = captionSources.find((c) => c.label === cand.label) ?? captionSources[0];
    for (const i of order.slice(0, nExamples)) {
      const cap = d.gt.imageToCaptions[i].find((t) => capSrc && capSrc.texts[t] !== d.captions[t]) ?? d.gt.imageToCaptions[i][0];
      const clean_ = d.pixels.slice(i * per, (i + 1) * per);
      const adv = cand.adv.slice(i * per, (i + 1) * per);
      let linf = 0;
      for (let k = 0; k < per; k++) linf = Math.max(linf, Math.abs(adv[k] - clean_[k]));
      examples.push({
        label: cand.label,
        eps255: cand.eps,
        imageIndex: i,
        imageId: d.imageIds[i],
        size: d.size,
        clean: clean_,
        adv,
        linf255: round4(linf * 255),
        cleanRank: clean.tr.rank[i],
        advRank: cand.trRank[i],
        captionOriginal: d.captions[cap],
        captionAdversarial: capSrc ? capSrc.texts[cap] : null,
        captionLabel: capSrc?.label ?? null,
        top1Clean: d.captions[top1(cleanSims, nT, i)],
        top1Adv: d.captions[top1(cand.sims, nT, i)],
      });
    }
  } else if (nExamples > 0 && captionSources.length) {
    const src = captionSources[0];
    for (let i = 0; i < Math.min(nExamples, nI); i++) {
      const cap = d.gt.imageToCaptions[i].find((t) => src.texts[t] !== d.captions[t]) ?? d.gt.imageToCaptions[i][0];
      examples.push({
        label: src.label,
        eps255: null,
        imageIndex: i,
        imageId: d.imageIds[i],
        size: d.size,
        clean: d.pixels.slice(i * per, (i + 1) * per),
        adv: null,
        linf255: 0,
        cleanRank: clean.tr.rank[i],
        advRank: clean.tr.rank[i],
        captionOriginal: d.captions[cap],
        captionAdversarial: src.texts[cap],
        captionLabel: src.label,
        top1Clean: d.captions[top1(cleanSims, nT, i)],
        top1Adv: d.captions[top1(cleanSims, nT, i)],
      });
    }
  }

  const settings: RobustSettings = {
    side,
    eps255,
    steps,
    stepSize255: options.stepSize255 ?? 'auto(2.5*eps/steps)',
    words,
    textLabels: options.textLabels?.name ?? null,
    seed,
    split: d.name,
    limit: options.limit ?? null,
    nImages: nI,
    nTexts: nT,
    ks: [...KS],
    chunkImages: chunk,
    goalK,
    resamples,
    transferAttack,
    blackbox: bb,
    protocol: robustProtocolText(side),
  };
  const report: RobustReport = {
    model: options.modelName ?? encoder.version,
    data: d.name,
    split: d.name,
    clean: cleanSummary,
    nImages: nI,
    nTexts: nT,
    protocol: CLEAN_PROTOCOL,
    robust: settings,
    attacks: entries,
    worst,
    sanity: { warnings: checks.filter((c) => c.status === 'warn').length, checks },
    seconds: round2((performance.now() - t0) / 1000),
  };
  progress({ stage: 'report', done: 1, total: 1, entriesDone });
  return { report, examples, captions: { original: d.captions.slice(), byAttack: Object.fromEntries(captionSources.map((c) => [c.label, c.texts])) } };
}

export function robustProtocolText(side: RobustSide): string {
  const s =
    side === 'query'
      ? 'side=query: only queries are adversarial (adversarial images vs clean captions for TR, adversarial captions vs clean images for IR); the gallery is clean (live-index scenario)'
      : 'side=both: adversarial images and adversarial captions form the similarity matrix (queries and gallery adversarial; the papers\' protocol)';
  return (
    `${s}. Recall in percent, Karpathy ITR protocol, pessimistic ties. ASR = share of queries correct at R@K on clean input that fail under attack (SGA). ` +
    'Worst = per query, a hit only if a hit under every attack at that eps (AutoAttack-style). 95% CI = percentile bootstrap over queries (seed 0). ' +
    'Attacks are crafted per chunk of images (with all their captions) against the clean gallery (goal: every gold item leaves the top-K, K = goalK); eps in /255 units, L-inf, pixels in [0,1].'
  );
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
