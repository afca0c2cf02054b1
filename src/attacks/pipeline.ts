/**
 * The stages recipes compose: an image stage (PGD on the embedding objective, optionally through an input
 * transform), a text stage (greedy word search scored by the embedding objective, or by a black-box oracle),
 * a black-box image stage (Square search on oracle scores), plus goal construction and result assembly.
 * Each stage takes its transformation, constraints, search options and objective explicitly, so a recipe reads
 * as the list of its parts.
 */
import { tf } from '../engine/tf.js';
import type { DualEncoder, Tokenizer } from '../model/types.js';
import type { AttackBatch, AttackEnv, AttackName, AttackResult, ImageAttackOutput, Norm, TextAttackOutput } from './types.js';
import { EmbeddingObjective, type ObjectiveWeights } from './goals/objective.js';
import { similarityDropGoal, topKGoal, type RetrievalGoal } from './goals/retrieval.js';
import type { PixelConstraint } from './constraints/pixel.js';
import type { TextConstraint } from './constraints/text.js';
import { QueryBudget } from './constraints/query-budget.js';
import type { InputTransform, PixelStep } from './transformations/pixel.js';
import type { WordTransformation } from './transformations/word.js';
import { pgdSearch } from './search/pgd.js';
import { greedyWordSearch, type TextScorer, type WordImportance } from './search/greedy-word.js';
import { squareSearchLinf } from './search/square.js';
import { CountingOracle, judgeHits, type OracleQuery } from './blackbox/oracle.js';
import { embedImageRows, embedTextRows, imageToCaptions, pairingOf, perturbationNorms } from './util/embed.js';
import { itemRng } from './util/seed.js';
import { takeData } from '../engine/read.js';

// ---------------------------------------------------------------------------------------------- context

/**
 * Validated view of a batch plus lazily computed clean embeddings (shared by the stages of one run). The
 * embeddings and goals are async: they are read back from the backend with `await data()` (webgpu has no
 * synchronous read in Node).
 */
export class AttackContext {
  readonly n: number; // images
  readonly size: number;
  readonly images: Float32Array | null;
  readonly captions: readonly string[];
  readonly pairing: Int32Array; // caption -> image (-1 unpaired)
  readonly imageCaptions: number[][]; // image -> captions
  private cleanImg?: Promise<Float32Array>;
  private cleanTxt?: Promise<Float32Array>;

  constructor(
    readonly batch: AttackBatch,
    readonly env: AttackEnv,
  ) {
    this.captions = batch.captions ?? [];
    const modelSize = env.encoder?.config.image.size;
    this.size = batch.size ?? modelSize ?? 0;
    if (batch.images) {
      if (!(this.size > 0)) throw new Error('attack: batch.size (image edge) is required without a model');
      const per = this.size * this.size * 3;
      if (batch.images.length % per !== 0) throw new Error(`attack: images length ${batch.images.length} is not a multiple of ${per}`);
      if (modelSize !== undefined && this.size !== modelSize) throw new Error(`attack: images are ${this.size}px but the model expects ${modelSize}px`);
      this.images = batch.images;
      this.n = batch.images.length / per;
    } else {
      this.images = null;
      this.n = 0;
    }
    this.pairing = pairingOf(batch.captionToImage, this.captions.length);
    this.imageCaptions = imageToCaptions(this.pairing, this.n);
  }

  get encoder(): DualEncoder {
    if (!this.env.encoder) throw new Error('this attack is white-box: env.encoder is required');
    return this.env.encoder;
  }

  get tokenizer(): Tokenizer {
    if (!this.env.tokenizer) throw new Error('text attacks need env.tokenizer');
    return this.env.tokenizer;
  }

  get dim(): number {
    return this.encoder.config.embedDim;
  }

  requireImages(): Float32Array {
    if (!this.images || this.n === 0) throw new Error('this attack needs batch.images');
    return this.images;
  }

  requireCaptions(): readonly string[] {
    if (this.captions.length === 0) throw new Error('this attack needs batch.captions');
    return this.captions;
  }

  cleanImageEmb(): Promise<Float32Array> {
    this.cleanImg ??= embedImageRows(this.encoder, this.requireImages(), this.n, this.size);
    return this.cleanImg;
  }

  cleanTextEmb(): Promise<Float32Array> {
    this.cleanTxt ??= embedTextRows(this.encoder, this.tokenizer, this.captions);
    return this.cleanTxt;
  }

  /** goal for image queries: top-k leave when targets.imageQueries is given, else paired-similarity drop */
  async imageGoal(): Promise<RetrievalGoal> {
    const t = this.batch.targets;
    if (t?.imageQueries) return topKGoal(t.imageQueries, t.k ?? 1);
    const hasPairs = this.captions.length > 0 && this.pairing.some((p) => p >= 0);
    return similarityDropGoal({
      dim: this.dim,
      clean: await this.cleanImageEmb(),
      paired: hasPairs ? { embeddings: await this.cleanTextEmb(), sets: this.imageCaptions } : undefined,
      minDrop: t?.minDrop,
    });
  }

  /** goal for caption queries: top-k leave when targets.textQueries is given, else paired-similarity drop */
  async textGoal(): Promise<RetrievalGoal> {
    const t = this.batch.targets;
    if (t?.textQueries) return topKGoal(t.textQueries, t.k ?? 1);
    const hasPairs = this.images !== null && this.pairing.some((p) => p >= 0);
    return similarityDropGoal({
      dim: this.dim,
      clean: await this.cleanTextEmb(),
      paired: hasPairs ? { embeddings: await this.cleanImageEmb(), sets: Array.from(this.pairing, (p) => (p >= 0 ? [p] : [])) } : undefined,
      minDrop: t?.minDrop,
    });
  }

  goalName(side: 'image' | 'text'): string {
    const t = this.batch.targets;
    const k = t?.k ?? 1;
    if (side === 'image' ? t?.imageQueries || t?.imageGoldIds : t?.textQueries || t?.captionGoldIds) return `top${k}-leave`;
    return `similarity-drop>${t?.minDrop ?? 0}`;
  }
}

// ---------------------------------------------------------------------------------------------- image stage

export interface PgdStageSpec {
  /** J = clean*(1-cos(adv, clean image)) + paired*mean(1-cos(adv, paired caption)) */
  objective: ObjectiveWeights;
  /** the captions whose embeddings are the paired targets (clean or adversarial), paired by batch.captionToImage */
  pairedCaptions?: readonly string[];
  constraints: readonly PixelConstraint[];
  step: PixelStep;
  steps: number;
  randomStart: boolean;
  norm: Norm;
  eps: number;
  keepBest?: boolean;
  /** applied to the pixels inside the objective (SGA: rescaled copies) */
  inputTransform?: InputTransform;
  batchSize: number;
  seed: number;
  salt: number;
}

export interface ImageStageOutput {
  adv: Float32Array;
  objective: number[];
  queries: number[];
}

export async function runPgdStage(ctx: AttackContext, spec: PgdStageSpec): Promise<ImageStageOutput> {
  const images = ctx.requireImages();
  const { n, size } = ctx;
  const enc = ctx.encoder;
  const E = ctx.dim;
  const needTargets = spec.objective.paired !== 0 && spec.pairedCaptions && spec.pairedCaptions.length > 0;
  const objective = new EmbeddingObjective({
    weights: spec.objective,
    dim: E,
    n,
    clean: spec.objective.clean !== 0 ? await ctx.cleanImageEmb() : undefined,
    targets: needTargets ? { embeddings: await embedTextRows(enc, ctx.tokenizer, spec.pairedCaptions!), sets: ctx.imageCaptions } : undefined,
  });
  const per = size * size * 3;
  const adv = new Float32Array(n * per);
  const obj: number[] = [];
  const queries: number[] = [];
  for (let s = 0; s < n; s += spec.batchSize) {
    const m = Math.min(spec.batchSize, n - s);
    const items = Array.from({ length: m }, (_, i) => s + i);
    const startRngs = items.map((i) => itemRng(spec.seed, spec.salt, i));
    const noiseRngs = items.map((i) => itemRng(spec.seed, spec.salt + 1000, i));
    const chunkObj = objective.forItems(items);
    const x0 = tf.tensor4d(images.subarray(s * per, (s + m) * per), [m, size, size, 3]);
    try {
      const loss = (x: tf.Tensor4D): tf.Tensor1D => {
        const input = spec.inputTransform ? spec.inputTransform.apply(x, noiseRngs) : x;
        return chunkObj.loss(enc.imageTower(input));
      };
      const out = await pgdSearch(
        x0,
        loss,
        { steps: spec.steps, randomStart: spec.randomStart, norm: spec.norm, eps: spec.eps, step: spec.step, constraints: spec.constraints, keepBest: spec.keepBest, hostReadsInput: spec.inputTransform?.readsHostPixels },
        startRngs,
      );
      adv.set(await takeData(out.adv), s * per);
      obj.push(...Array.from(out.objective));
      for (let i = 0; i < m; i++) queries.push(out.forwards * (spec.inputTransform?.replicas ?? 1));
    } finally {
      x0.dispose();
      chunkObj.dispose();
    }
  }
  return { adv, objective: obj, queries };
}

export function imageOutput(ctx: AttackContext, stage: ImageStageOutput, success: boolean[]): ImageAttackOutput {
  const { linf, l2 } = perturbationNorms(stage.adv, ctx.requireImages(), ctx.n);
  return { data: stage.adv, size: ctx.size, count: ctx.n, success, objective: stage.objective, linf, l2, queries: stage.queries };
}

/** goal check of adversarial images (white-box) */
export async function judgeImages(ctx: AttackContext, adv: Float32Array): Promise<boolean[]> {
  const emb = await embedImageRows(ctx.encoder, adv, ctx.n, ctx.size);
  return (await ctx.imageGoal()).succeeded(emb, Array.from({ length: ctx.n }, (_, i) => i));
}

// ---------------------------------------------------------------------------------------------- text stage

export interface TextStageSpec {
  transformation: WordTransformation;
  constraints: readonly TextConstraint[];
  maxWordsChanged: number;
  wir: WordImportance;
  /** J = clean*(1-cos(adv, clean caption)) + paired*(1-cos(adv, paired image)) */
  objective: ObjectiveWeights;
  /** pixels of the images whose embeddings guide the captions (clean or adversarial); default: batch images */
  guideImages?: Float32Array;
  /** stop a caption once the goal is reached (default true) */
  earlyStop?: boolean;
  /** candidate captions embedded per textTower call (default 1024) */
  embedBatch?: number;
  seed: number;
  salt: number;
}

/** the white-box scorer: candidates embedded in one textTower call per search round, scored by the objective */
export function objectiveTextScorer(ctx: AttackContext, objective: EmbeddingObjective, goal: RetrievalGoal | null, embedBatch = 1024): TextScorer {
  return {
    score: async (texts, items) => {
      const emb = await embedTextRows(ctx.encoder, ctx.tokenizer, texts, embedBatch);
      return { score: items.map((it, r) => objective.score(emb, r, it)) };
    },
    succeeded: goal
      ? async (texts, items) => goal.succeeded(await embedTextRows(ctx.encoder, ctx.tokenizer, texts, embedBatch), items)
      : undefined,
  };
}

export async function runTextStage(ctx: AttackContext, spec: TextStageSpec): Promise<TextAttackOutput> {
  const captions = ctx.requireCaptions();
  const E = ctx.dim;
  const hasPairs = ctx.images !== null && ctx.pairing.some((p) => p >= 0);
  const weights = { clean: spec.objective.clean, paired: hasPairs ? spec.objective.paired : 0 };
  if (weights.clean === 0 && weights.paired === 0) weights.clean = 1; // no paired image: move away from the clean caption
  const guide = hasPairs && weights.paired !== 0 ? await (spec.guideImages ? embedImageRows(ctx.encoder, spec.guideImages, ctx.n, ctx.size) : ctx.cleanImageEmb()) : undefined;
  const objective = new EmbeddingObjective({
    weights,
    dim: E,
    n: captions.length,
    clean: weights.clean !== 0 ? await ctx.cleanTextEmb() : undefined,
    targets: guide ? { embeddings: guide, sets: Array.from(ctx.pairing, (p) => (p >= 0 ? [p] : [])) } : undefined,
  });
  const goal = await ctx.textGoal();
  const budget = new QueryBudget(Number.MAX_SAFE_INTEGER, captions.length);
  const out = await greedyWordSearch(captions, {
    transformation: spec.transformation,
    constraints: spec.constraints,
    scorer: objectiveTextScorer(ctx, objective, spec.earlyStop === false ? null : goal, spec.embedBatch),
    maxWordsChanged: spec.maxWordsChanged,
    wir: spec.wir,
    budget,
    rngs: captions.map((_, i) => itemRng(spec.seed, spec.salt, i)),
  });
  // final goal check on every caption (the search only checks accepted swaps)
  const success = goal.succeeded(await embedTextRows(ctx.encoder, ctx.tokenizer, out.texts), captions.map((_, i) => i));
  return { texts: out.texts, original: captions.slice(), success, objective: out.score, wordsChanged: out.wordsChanged, queries: Array.from(budget.used) };
}

// ---------------------------------------------------------------------------------------------- black-box stages

export function requireOracle(ctx: AttackContext, maxQueries: number, nItems: number): CountingOracle {
  if (!ctx.env.oracle) throw new Error('black-box attacks need env.oracle');
  return new CountingOracle(ctx.env.oracle, maxQueries, nItems);
}

function goldSets(ids: readonly (readonly (string | number)[])[] | undefined, n: number, what: string): Set<string | number>[] {
  if (!ids || ids.length !== n) throw new Error(`black-box attacks need targets.${what} (gold ids per query, ${n} entries)`);
  return ids.map((g) => new Set(g));
}

export interface SquareStageSpec {
  eps: number;
  maxQueries: number;
  pInit: number;
  seed: number;
  salt: number;
}

export async function runSquareStage(ctx: AttackContext, spec: SquareStageSpec): Promise<ImageAttackOutput> {
  const images = ctx.requireImages();
  const k = ctx.batch.targets?.k ?? 1;
  const gold = goldSets(ctx.batch.targets?.imageGoldIds, ctx.n, 'imageGoldIds');
  const oracle = requireOracle(ctx, spec.maxQueries, ctx.n);
  const out = await squareSearchLinf(images, ctx.n, ctx.size, {
    eps: spec.eps,
    pInit: spec.pInit,
    scheduleQueries: spec.maxQueries,
    budget: oracle.budget,
    rngs: Array.from({ length: ctx.n }, (_, i) => itemRng(spec.seed, spec.salt, i)),
    // the search spends from oracle.budget itself, so the raw oracle is called here (no double counting)
    evaluate: async (imgs, items) => {
      oracle.calls++;
      const hits = await oracle.oracle(imgs.map((pixels): OracleQuery => ({ kind: 'image', pixels, size: ctx.size })));
      if (hits.length !== imgs.length) throw new Error(`oracle returned ${hits.length} results for ${imgs.length} queries`);
      const j = hits.map((h, r) => judgeHits(h, gold[items[r]], k));
      return { score: j.map((x) => x.score), success: j.map((x) => x.success) };
    },
  });
  const { linf, l2 } = perturbationNorms(out.adv, images, ctx.n);
  return { data: out.adv, size: ctx.size, count: ctx.n, success: out.success, objective: out.score, linf, l2, queries: Array.from(oracle.budget.used) };
}

export interface BlackBoxTextStageSpec {
  transformation: WordTransformation;
  constraints: readonly TextConstraint[];
  maxWordsChanged: number;
  wir: WordImportance;
  maxQueries: number;
  seed: number;
  salt: number;
}

export async function runBlackBoxTextStage(ctx: AttackContext, spec: BlackBoxTextStageSpec): Promise<TextAttackOutput> {
  const captions = ctx.requireCaptions();
  const k = ctx.batch.targets?.k ?? 1;
  const gold = goldSets(ctx.batch.targets?.captionGoldIds, captions.length, 'captionGoldIds');
  const oracle = requireOracle(ctx, spec.maxQueries, captions.length);
  // the search spends from oracle.budget itself; the oracle wrapper must not count twice
  const raw = oracle.oracle;
  const scorer: TextScorer = {
    score: async (texts, items) => {
      oracle.calls++;
      const hits = await raw(texts.map((text): OracleQuery => ({ kind: 'text', text })));
      if (hits.length !== texts.length) throw new Error(`oracle returned ${hits.length} results for ${texts.length} queries`);
      const j = hits.map((h, r) => judgeHits(h, gold[items[r]], k));
      return { score: j.map((x) => x.score), success: j.map((x) => x.success) };
    },
  };
  const out = await greedyWordSearch(captions, {
    transformation: spec.transformation,
    constraints: spec.constraints,
    scorer,
    maxWordsChanged: spec.maxWordsChanged,
    wir: spec.wir,
    budget: oracle.budget,
    rngs: captions.map((_, i) => itemRng(spec.seed, spec.salt, i)),
  });
  return { texts: out.texts, original: captions.slice(), success: out.success, objective: out.score, wordsChanged: out.wordsChanged, queries: Array.from(oracle.budget.used) };
}

// ---------------------------------------------------------------------------------------------- result

export function assembleResult(p: {
  attack: AttackName;
  threatModel: 'white-box' | 'black-box';
  config: Record<string, unknown>;
  seed: number;
  goal: string;
  images?: ImageAttackOutput;
  captions?: TextAttackOutput;
  started: number;
}): AttackResult {
  const sum = (a?: number[]) => (a ?? []).reduce((x, y) => x + y, 0);
  return {
    attack: p.attack,
    threatModel: p.threatModel,
    config: p.config,
    seed: p.seed,
    goal: p.goal,
    ...(p.images ? { images: p.images } : {}),
    ...(p.captions ? { captions: p.captions } : {}),
    queries: sum(p.images?.queries) + sum(p.captions?.queries),
    wallMs: performance.now() - p.started,
  };
}
