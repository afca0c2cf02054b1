import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../src/engine/tf.js';
import { trainSchema, type TrainConfig } from '../src/config.js';
import type { DatasetSplit, SceneGraph } from '../src/data/types.js';
import { createDualEncoder, MAX_LOGIT_SCALE } from '../src/model/dual-encoder.js';
import { modelConfigFor, modelConfigFromPreset } from '../src/model/presets.js';
import { buildTokenizer, tokenizerFromJSON } from '../src/model/tokenizer.js';
import type { DualEncoder, ModelConfig, Tokenizer } from '../src/model/types.js';
import { createProgress } from '../src/util/progress.js';
import { Rng } from '../src/util/rng.js';
import { sampleAugmentedBatch, type AugmentPool } from '../src/augment/pool.js';
import { itemRng } from '../src/attacks/util/seed.js';
import { epochBatches, gatherPixels, sampleCaptions, stackIds, stackIdsBucketed, stepsPerEpoch, textTowerBucketed, translateBatch } from './batches.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { multiPositiveInfoNce } from './losses/clip.js';
import { contrastiveAgainst, fareLoss, fareObjective } from './losses/adversarial.js';
import { pgdImages, pgdTokenEmbeddings, substituteWords } from './inner.js';
import { AdamW, clipToNorm, globalNorm } from './optimizer.js';
import { warmupCosine } from './schedule.js';
import { hardBatches } from './mining.js';
import { trainableNames, validateFreezeBlocks } from './freeze.js';
import { leanVariableGrads } from './lean-grads.js';
import { Encoder } from '../src/model/encoder.js';
import { textLabelLexicon } from '../src/eval/text-labels.js';
import { hardNegativeCaptions, renderHardNegativeImages } from '../src/data/scenes/negatives.js';

export interface TrainerState {
  globalStep: number;
  totalSteps: number;
  seed: number;
  train: TrainConfig;
  dataFingerprint: string;
  modelConfig: ModelConfig;
  tokenizer: unknown;
  optimizerStep: number;
  elapsedMs: number;
  /** id of the --init artifact the run started from (null: from scratch) */
  initId?: string | null;
  /** batchSampling 'hard': the current epoch's mined batches (they depend on the weights at the epoch's start) */
  minedEpoch?: { epoch: number; batches: number[][] };
}

export interface TrainOptions {
  out: string;
  train: DatasetSplit;
  config: TrainConfig;
  seed: number;
  /** continue from out/checkpoint.mfck when it exists */
  resume?: boolean;
  quiet?: boolean;
  /** stop (as if killed) after this global step; for tests of resume */
  stopAfterStep?: number;
  /**
   * asked after every optimizer step; true stops the run there with a checkpoint written (a graceful stop, e.g. on
   * SIGTERM): the result is unfinished and `--resume` continues bit-identically
   */
  shouldStop?: () => boolean;
  onStep?: (info: StepInfo) => void;
  /**
   * fine-tune from this model. Its weights are copied and the caller keeps ownership, unless `adopt`: then the
   * trainer takes the model itself (one copy of the weights fewer, which matters at CLIP sizes), trains it in place,
   * returns it as the result's model and disposes it on failure or when resuming; the caller must not touch it again.
   * Ignored when resuming.
   */
  init?: { model: DualEncoder; tokenizer: Tokenizer; id: string; adopt?: boolean };
  /** FARE: the frozen reference encoder (caller owns it) */
  reference?: DualEncoder;
  /** N:N augmentation pool (built by src/augment buildAugmentPool) */
  pool?: AugmentPool;
  /**
   * called once per optimizer step with the gradients it applies (by variable name: the mean over the step's
   * micro-batches, before clipping); the tensors are the trainer's and live only during the call
   */
  onGradients?: (step: number, grads: Readonly<Record<string, tf.Tensor>>) => void;
}

export interface StepInfo {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  scale: number;
  gradNorm: number;
  ms: number;
  numTensors: number;
  /** adversarial methods: wall time of the inner maximisation */
  innerMs?: number;
  /** MAT substitution: words changed in this batch */
  wordsChanged?: number;
}

export interface TrainResult {
  model: DualEncoder;
  tokenizer: Tokenizer;
  state: TrainerState;
  finished: boolean;
  secondsPerEpoch: number;
  finalLoss: number;
}

export const CHECKPOINT_FILE = 'checkpoint.mfck';
export const METRICS_FILE = 'metrics.jsonl';

/** A cheap identity of a split: changing images or captions changes it, so a resume cannot mix data sets. */
export function fingerprintSplit(split: DatasetSplit): string {
  const h = createHash('sha256');
  h.update(`${split.count}|${split.size}|`);
  for (const id of split.imageIds) h.update(id + '\n');
  for (const c of split.captions) h.update(c + '\n');
  // a sample of pixels so that re-rendered images with the same names are noticed
  const stride = Math.max(1, Math.floor(split.images.length / 4096));
  for (let i = 0; i < split.images.length; i += stride) h.update(Uint8Array.of(split.images[i]));
  return h.digest('hex').slice(0, 16);
}

function withDefaults(train: unknown): unknown {
  const parsed = trainSchema.safeParse(train);
  return parsed.success ? parsed.data : train;
}

function describeMismatch(a: unknown, b: unknown): string[] {
  const out: string[] = [];
  const ja = a as Record<string, unknown>;
  const jb = b as Record<string, unknown>;
  for (const k of new Set([...Object.keys(ja), ...Object.keys(jb)])) {
    if (JSON.stringify(ja[k]) !== JSON.stringify(jb[k])) out.push(`${k}: checkpoint ${JSON.stringify(ja[k])} vs now ${JSON.stringify(jb[k])}`);
  }
  return out;
}

/**
 * Contrastive training and the defenses, with step-exact resume: the batch order depends on (seed, epoch), caption
 * sampling, shifts and inner attacks on (seed, micro-batch index), and the checkpoint holds every weight and the
 * optimizer moments of every trainable one, so a run killed at any point and resumed replays the same steps and
 * ends with the same weights as an uninterrupted run. Fine-tuning options: --freeze-blocks (training/freeze.ts),
 * --grad-accum (trainSteps below), the logit scale clamped after every step as CLIP does.
 */
export async function trainModel(opts: TrainOptions): Promise<TrainResult> {
  try {
    return await trainSteps(opts);
  } catch (e) {
    // an adopted init model belongs to the trainer from the call on (dispose is idempotent)
    if (opts.init?.adopt) opts.init.model.dispose();
    throw e;
  }
}

/**
 * Steps, micro-batches and accumulation: an optimizer step averages the gradients of `gradAccum` consecutive
 * batches of the epoch's order (the last batches of an epoch that do not fill a step are skipped, as open_clip
 * does); every seeded stream of a batch (caption sampling, shifts, inner attacks) is keyed by the global
 * micro-batch index step * gradAccum + k, so gradAccum 1 replays exactly the runs made before accumulation existed.
 */
async function trainSteps(opts: TrainOptions): Promise<TrainResult> {
  const { out, train, config, seed } = opts;
  if (train.count < 2) throw new Error(`training needs at least 2 images, the train split has ${train.count}`);
  const accum = config.gradAccum;
  const batchesPerEpoch = stepsPerEpoch(train.count, config.batch);
  const perEpoch = Math.floor(batchesPerEpoch / accum);
  if (perEpoch < 1) {
    throw new Error(`--grad-accum ${accum} needs ${accum} batches per epoch, but the ${train.count} training images make ${batchesPerEpoch} batch(es) of ${Math.min(config.batch, train.count)}: lower --grad-accum or --batch`);
  }
  const totalSteps = Math.min(perEpoch * config.epochs, config.maxSteps ?? Infinity);
  mkdirSync(out, { recursive: true });
  const ckptPath = join(out, CHECKPOINT_FILE);
  const metricsPath = join(out, METRICS_FILE);
  const fingerprint = fingerprintSplit(train);

  let tokenizer: Tokenizer;
  let model: DualEncoder;
  let startStep = 0;
  let elapsedBefore = 0;
  let restored: ReturnType<typeof readCheckpoint<TrainerState>> | undefined;

  if (existsSync(ckptPath)) {
    if (!opts.resume) {
      throw new Error(`${out} already holds a training checkpoint: pass --resume to continue it, or choose another --out`);
    }
    restored = readCheckpoint<TrainerState>(ckptPath);
    const s = restored.state;
    const problems = [
      ...(s.dataFingerprint !== fingerprint ? [`training data changed (fingerprint ${s.dataFingerprint} vs ${fingerprint})`] : []),
      ...(s.seed !== seed ? [`seed: checkpoint ${s.seed} vs now ${seed}`] : []),
      // settings added to the schema after the checkpoint was written take their defaults, so old checkpoints resume
      ...describeMismatch(withDefaults(s.train), config),
    ];
    if (problems.length) throw new Error(`cannot resume ${ckptPath}:\n  ${problems.join('\n  ')}`);
    if (opts.init?.adopt) opts.init.model.dispose();
    tokenizer = tokenizerFromJSON(s.tokenizer);
    model = createDualEncoder(s.modelConfig, seed);
    startStep = s.globalStep;
    elapsedBefore = s.elapsedMs;
  } else if (opts.init) {
    const im = opts.init.model.config.image;
    const initStem = im.stem ?? 'linear';
    if (config.stem && config.stem !== initStem) throw new Error(`--stem ${config.stem} does not match the --init model's image stem '${initStem}' (a fine-tune keeps the architecture)`);
    if (config.imageSize && config.imageSize !== im.size) throw new Error(`--image-size ${config.imageSize} does not match the --init model's ${im.size} (a fine-tune keeps the architecture)`);
    if (config.patch && config.patch !== im.patch) throw new Error(`--patch ${config.patch} does not match the --init model's ${im.patch} (a fine-tune keeps the architecture)`);
    tokenizer = opts.init.tokenizer;
    if (opts.init.adopt) {
      model = opts.init.model;
    } else {
      model = createDualEncoder(opts.init.model.config, seed);
      for (const [name, v] of model.variables) {
        const src = opts.init.model.variables.get(name);
        if (!src) {
          model.dispose();
          throw new Error(`--init model lacks variable ${name}`);
        }
        v.assign(src);
      }
    }
    writeFileSync(metricsPath, '');
  } else {
    const maxLen = modelConfigFromPreset(config.preset, 2).text.maxLen;
    tokenizer = buildTokenizer(train.captions, { maxLen, maxVocab: config.maxVocab, minFreq: config.minWordFreq });
    const modelConfig = modelConfigFor(config.preset, tokenizer.vocabSize, config);
    model = createDualEncoder(modelConfig, seed);
    writeFileSync(metricsPath, '');
  }
  const method = config.method;
  // TeCoA and FARE harden the image encoder only (text tower and temperature frozen), as in their papers
  const imageOnly = method === 'tecoa' || method === 'fare';
  let optimizer: AdamW | null = null;
  let progress: ReturnType<typeof createProgress> | null = null;
  try {
    validateFreezeBlocks(config.freezeBlocks, model.config, { imageOnly, fromInit: restored ? (restored.state.initId ?? null) !== null : Boolean(opts.init) });
    if (method === 'fare' && !opts.reference) throw new Error('FARE needs a frozen reference encoder (--reference MODEL, default the --init model)');
    if (config.augment.length > 0 && !opts.pool) throw new Error('--augment is set but no augmentation pool was built');
    for (const [flag, n] of [['--hard-negatives', config.hardNegatives], ['--hard-negative-images', config.hardNegativeImages]] as const) {
      if (n === 0) continue;
      if (method !== 'clean' || opts.pool) throw new Error(`${flag} works with --method clean and no --augment`);
      const missing = train.scenes ? train.scenes.findIndex((g) => !g || g.objects.length === 0) : 0;
      if (missing >= 0) throw new Error(`${flag} needs a scene graph with objects for every training image (the scenes data set); image ${train.imageIds[missing] ?? missing} has none`);
    }
    // rendered once: the same seed gives the same negatives, so a resumed run trains against the same images
    const negativeImages = config.hardNegativeImages > 0 ? await renderNegativeImages() : null;
    const initId = restored ? (restored.state.initId ?? null) : (opts.init?.id ?? null);

    // only trainable variables get gradients (the tape skips the backward of frozen parts) and AdamW moments
    const trainable = trainableNames(model, { freezeBlocks: config.freezeBlocks, imageOnly });
    const trainableVars = new Map(trainable.map((name) => [name, model.variables.get(name)!]));
    const varList = [...trainableVars.values()];
    const opt = new AdamW(trainableVars, { weightDecay: config.weightDecay });
    optimizer = opt;
    if (restored) {
      const s = restored.state;
      for (const [name, v] of model.variables) assignFrom(restored.tensors, `w/${name}`, v);
      for (const [name, v] of opt.m) assignFrom(restored.tensors, `m/${name}`, v);
      for (const [name, v] of opt.v) assignFrom(restored.tensors, `v/${name}`, v);
      opt.step = s.optimizerStep;
      truncateMetrics(metricsPath, startStep);
    }
    // CLIP's rule (open_clip clamps logit_scale in place after every optimizer step): the log scale stays in
    // [0, ln 100]; logitScale()'s own min(., ln 100) then never binds during training, so gradients always reach it
    const scaleVar = trainableVars.get('logitScale') ?? null;
    const maxLogScale = Math.log(MAX_LOGIT_SCALE);

    const tokenized = train.captions.map((c) => tokenizer.encode(c));
    const budget = {
      eps: config.trainEps / 255,
      steps: config.trainSteps,
      stepSize: (config.trainStepSize ?? (config.trainSteps > 0 ? (2.5 * config.trainEps) / config.trainSteps : 0)) / 255,
    };
    const textLabels = textLabelLexicon(config.textLabels);
    const nameOf = new Map<string, string>();
    for (const [name, v] of model.variables) nameOf.set(v.name, name);

    const state = (): TrainerState => ({
      globalStep: step,
      totalSteps,
      seed,
      train: config,
      dataFingerprint: fingerprint,
      modelConfig: model.config,
      tokenizer: tokenizer.toJSON(),
      optimizerStep: opt.step,
      elapsedMs: elapsedBefore + (Date.now() - startedAt),
      initId,
      ...(mined ? { minedEpoch: { epoch: mined.epoch, batches: mined.batches.map((b) => Array.from(b)) } } : {}),
    });
    const saveCheckpoint = async () => {
      const tensors = new Map<string, tf.Tensor>();
      // frozen weights too: a resumed run rebuilds the model from the config and restores every weight from here
      for (const [name, v] of model.variables) tensors.set(`w/${name}`, v);
      for (const [name, v] of opt.m) tensors.set(`m/${name}`, v);
      for (const [name, v] of opt.v) tensors.set(`v/${name}`, v);
      await writeCheckpoint(ckptPath, state(), tensors);
    };

    // mined batches of the current epoch; a resumed run takes them from the checkpoint (they depend on the
    // weights at the epoch's start, which a mid-epoch checkpoint no longer holds)
    let mined: { epoch: number; batches: Int32Array[] } | null = restored?.state.minedEpoch
      ? { epoch: restored.state.minedEpoch.epoch, batches: restored.state.minedEpoch.batches.map((b) => Int32Array.from(b)) }
      : null;
    const batchesOf = async (epoch: number): Promise<Int32Array[]> => {
      if (config.batchSampling !== 'hard' || epoch < config.hardFromEpoch) return epochBatches(train.count, config.batch, seed, epoch);
      if (mined?.epoch !== epoch) {
        const emb = await new Encoder(model, tokenizer).embedImagesMatrix(train.images, train.count, 128);
        mined = { epoch, batches: await hardBatches(emb, train.count, model.config.embedDim, { batch: config.batch, group: config.hardGroup, seed, epoch }) };
      }
      return mined.batches;
    };

    progress = createProgress('train', totalSteps, { quiet: opts.quiet });
    const startedAt = Date.now();
    let step = startStep;
    let lastLoss = NaN;
    let stepMsTotal = 0;
    let stepsTimed = 0;
    for (let epoch = Math.floor(startStep / perEpoch); epoch < config.epochs && step < totalSteps; epoch++) {
      const batches = await batchesOf(epoch);
      for (let inEpoch = step - epoch * perEpoch; inEpoch < perEpoch && step < totalSteps; inEpoch++) {
        const t0 = Date.now();
        const lr = warmupCosine(step, totalSteps, config.lr, config.warmupFraction, config.minLrRatio);
        // the gradients summed over the step's micro-batches, by variable name
        const named: Record<string, tf.Tensor> = {};
        // the micro-batches' losses stay on the device until one batched download with the gradient norm
        const losses: tf.Scalar[] = [];
        let lossSum = 0;
        let innerMs: number | undefined;
        let wordsChanged: number | undefined;
        try {
          for (let k = 0; k < accum; k++) {
            const micro = step * accum + k;
            const r = await microBatchGradients(batches[inEpoch * accum + k], micro);
            losses.push(r.value);
            if (r.innerMs !== undefined) innerMs = (innerMs ?? 0) + r.innerMs;
            if (r.wordsChanged !== undefined) wordsChanged = (wordsChanged ?? 0) + r.wordsChanged;
            for (const [vn, g] of Object.entries(r.grads)) {
              const name = nameOf.get(vn) ?? vn;
              const prev = named[name];
              if (!prev) {
                named[name] = g;
                continue;
              }
              named[name] = tf.add(prev, g);
              prev.dispose();
              g.dispose();
            }
          }
          if (accum > 1) {
            // the mean of the micro-batch gradients (a variable a micro-batch did not reach contributes zero)
            for (const [name, g] of Object.entries(named)) {
              named[name] = tf.div(g, accum);
              g.dispose();
            }
          }
          opts.onGradients?.(step, named);
          const norm = globalNorm(named);
          const [normV, ...lossVs] = await Promise.all([norm.data(), ...losses.map((l) => l.data())]);
          norm.dispose();
          tf.dispose(losses.splice(0)); // before StepInfo.numTensors, as when each loss was disposed on reading
          for (const v of lossVs) lossSum += v[0];
          const gradNorm = clipToNorm(named, normV[0], config.gradClip);
          opt.apply(named, lr);
          if (scaleVar) tf.tidy(() => scaleVar.assign(tf.clipByValue(scaleVar, 0, maxLogScale)));
          lastLoss = lossSum / accum;
          if (!Number.isFinite(lastLoss)) throw new Error(`loss became ${lastLoss} at step ${step} (lr ${lr}); lower --lr`);
          const scaleT = tf.tidy(() => model.logitScale());
          const scale = (await scaleT.data())[0];
          scaleT.dispose();
          step += 1;
          const ms = Date.now() - t0;
          stepMsTotal += ms;
          stepsTimed += 1;
          const info: StepInfo = { step, epoch, loss: lastLoss, lr, scale, gradNorm, ms, numTensors: tf.memory().numTensors, ...(innerMs !== undefined ? { innerMs } : {}), ...(wordsChanged !== undefined ? { wordsChanged } : {}) };
          appendFileSync(metricsPath, JSON.stringify(info) + '\n');
          opts.onStep?.(info);
        } finally {
          for (const g of Object.values(named)) g.dispose();
          tf.dispose(losses);
        }
        progress.update(step, { epoch: `${epoch + 1}/${config.epochs}`, loss: lastLoss });
        const checkpointed = step % config.checkpointEvery === 0 || inEpoch === perEpoch - 1 || step === totalSteps;
        if (checkpointed) await saveCheckpoint();
        // one turn of the event loop, so a signal handler (which sets shouldStop) runs between steps: the step
        // loop is otherwise synchronous compute and would only see the signal after the last step
        if (opts.shouldStop) await new Promise((r) => setImmediate(r));
        // a graceful stop writes its checkpoint; stopAfterStep stops as if killed (tests of resume)
        const stopRequested = step < totalSteps && Boolean(opts.shouldStop?.());
        if (stopRequested && !checkpointed) await saveCheckpoint();
        if (stopRequested || (opts.stopAfterStep !== undefined && step >= opts.stopAfterStep)) {
          progress.stop();
          opt.dispose();
          return { model, tokenizer, state: state(), finished: false, secondsPerEpoch: secondsPerEpoch(), finalLoss: lastLoss };
        }
      }
    }
    progress.stop();
    opt.dispose();
    return { model, tokenizer, state: state(), finished: true, secondsPerEpoch: secondsPerEpoch(), finalLoss: lastLoss };

    /** the loss and gradients (by tf variable name) of one micro-batch; `micro` keys its seeded streams */
    async function microBatchGradients(images: Int32Array, micro: number): Promise<{ value: tf.Scalar; grads: tf.NamedTensorMap; innerMs?: number; wordsChanged?: number }> {
      const rng = new Rng(seed * 1_000_003 + micro);
      if (method !== 'clean' || opts.pool) return adversarialStep(images, rng, micro);
      const s = train.size;
      const sampled = sampleCaptions(train, images, config.captionsPerImage, rng);
      const { parts, owner } = stackIdsBucketed(tokenized, sampled.captions, sampled.owner, config.textBuckets);
      const pixels = gatherPixels(train, images);
      translateBatch(pixels, images.length, s, config.shift, itemRng(seed, SHIFT_SALT, micro));
      const x = tf.tensor4d(pixels, [images.length, s, s, 3]);
      const idTs = parts.map((p) => tf.tensor2d(p.ids, [p.rows, p.length], 'int32'));
      const negIds = config.hardNegatives > 0 ? negativeIds(images, itemRng(seed, NEGATIVES_SALT, micro)) : null;
      const negX = negativeImages ? negativeImageBatch(negativeImages, images, micro) : null;
      try {
        return leanVariableGrads(() => {
          // positives and negative images go through the image tower as one batch (one set of larger matmuls)
          const all = model.imageTower(negX ? tf.concat([x, negX]) : x);
          const imageEmb = negX ? all.slice([0, 0], [images.length, -1]) : all;
          const negativeImageEmb = negX ? all.slice([images.length, 0], [-1, -1]) : undefined;
          return multiPositiveInfoNce(imageEmb, textTowerBucketed(model, idTs), owner, model.logitScale(), {
            texts: negIds ? model.textTower(negIds) : undefined,
            images: negativeImageEmb,
          });
        }, varList);
      } finally {
        negX?.dispose();
        x.dispose();
        negIds?.dispose();
        for (const t of idTs) t.dispose();
      }
    }

    /**
     * One step of an augmented and/or adversarial method: the batch (pool views + captions when augmenting), the
     * inner maximisation (input-only gradients, seeded by (seed, step)), then the outer loss and its gradients.
     */
    async function adversarialStep(images: Int32Array, rng: Rng, at: number): Promise<{ value: tf.Scalar; grads: tf.NamedTensorMap; innerMs?: number; wordsChanged?: number }> {
      const s = train.size;
      const per = s * s * 3;
      let pixels: Float32Array;
      let texts: string[];
      let owner: Int32Array;
      if (opts.pool) {
        const b = sampleAugmentedBatch(opts.pool, images, config.captionsPerImage, config.augmentTexts, config.augmentImageP, rng);
        pixels = new Float32Array(images.length * per);
        b.images.forEach((im, k) => {
          for (let p = 0; p < per; p++) pixels[k * per + p] = im[p] / 255;
        });
        texts = b.captions;
        owner = b.owner;
      } else {
        const c = sampleCaptions(train, images, config.captionsPerImage, rng);
        pixels = gatherPixels(train, images);
        texts = c.captions.map((i) => train.captions[i]);
        owner = c.owner;
      }
      translateBatch(pixels, images.length, s, config.shift, itemRng(seed, SHIFT_SALT, at));
      const innerRng = itemRng(seed, 0x5eed, at);
      const x = tf.tensor4d(pixels, [images.length, s, s, 3]);
      const idsOf = (t: readonly string[]) => {
        const enc = t.map((c) => tokenizer.encode(c));
        const { ids, length } = stackIds(enc, enc.map((_, i) => i));
        return tf.tensor2d(ids, [t.length, length], 'int32');
      };
      const t0 = Date.now();
      const owned: tf.Tensor[] = [x];
      try {
        if (method === 'clean') {
          const idT = idsOf(texts);
          owned.push(idT);
          return leanVariableGrads(() => multiPositiveInfoNce(model.imageTower(x), model.textTower(idT), owner, model.logitScale()), varList);
        }
        if (method === 'tecoa') {
          const idT = idsOf(texts);
          const textEmb = tf.tidy(() => model.textTower(idT));
          const scale = tf.tidy(() => model.logitScale());
          owned.push(idT, textEmb, scale);
          const xAdv = pgdImages(x, (xx) => contrastiveAgainst(model.imageTower(xx), textEmb, owner, scale), budget, innerRng);
          owned.push(xAdv);
          const innerMs = Date.now() - t0;
          return { ...leanVariableGrads(() => contrastiveAgainst(model.imageTower(xAdv), textEmb, owner, scale), varList), innerMs };
        }
        if (method === 'fare') {
          const ref = tf.tidy(() => opts.reference!.imageTower(x));
          owned.push(ref);
          const xAdv = pgdImages(x, (xx) => fareObjective(model.imageTower(xx), ref), budget, innerRng);
          owned.push(xAdv);
          const innerMs = Date.now() - t0;
          return { ...leanVariableGrads(() => fareLoss(model.imageTower(xAdv), ref), varList), innerMs };
        }
        // MAT: text first, then the image against the adversarial captions, then the loss on the adversarial pairs
        const scale = tf.tidy(() => model.logitScale());
        owned.push(scale);
        let wordsChanged: number | undefined;
        let advIds: tf.Tensor2D;
        let delta: tf.Tensor3D | null = null;
        let advTextEmb: tf.Tensor2D;
        if (config.textAttack === 'embedding') {
          advIds = idsOf(texts);
          owned.push(advIds);
          const cleanImg = tf.tidy(() => model.imageTower(x));
          owned.push(cleanImg);
          delta = await pgdTokenEmbeddings(model, advIds, (te) => contrastiveAgainst(cleanImg, te, owner, scale), { relEps: config.textEmbedEps, steps: config.trainSteps });
          owned.push(delta);
          const d = delta;
          advTextEmb = tf.tidy(() => model.textTowerFromEmbeddings(tf.add(model.embedTokens(advIds), d) as tf.Tensor3D, advIds));
        } else {
          const sub = await substituteWords(model, tokenizer, pixels, s, texts, owner, {
            words: config.trainWords,
            candidates: config.textCandidates,
            wir: config.textWir,
            seed: innerRng.seed(),
            labels: textLabels,
          });
          wordsChanged = sub.wordsChanged;
          advIds = idsOf(sub.texts);
          owned.push(advIds);
          advTextEmb = tf.tidy(() => model.textTower(advIds));
        }
        owned.push(advTextEmb);
        const xAdv = pgdImages(x, (xx) => contrastiveAgainst(model.imageTower(xx), advTextEmb, owner, scale), budget, innerRng);
        owned.push(xAdv);
        const innerMs = Date.now() - t0;
        const d = delta;
        const out = leanVariableGrads(() => {
          const te = d ? model.textTowerFromEmbeddings(tf.add(model.embedTokens(advIds), d) as tf.Tensor3D, advIds) : model.textTower(advIds);
          return multiPositiveInfoNce(model.imageTower(xAdv), te, owner, model.logitScale());
        }, varList);
        return { ...out, innerMs, wordsChanged };
      } finally {
        for (const t of owned) t.dispose();
      }
    }

    /** token ids of config.hardNegatives scene-edit captions per image of the batch */
    function negativeIds(images: Int32Array, rng: Rng): tf.Tensor2D {
      const enc: number[][] = [];
      for (const i of images) for (const c of hardNegativeCaptions(train.scenes![i]!, config.hardNegatives, rng)) enc.push(tokenizer.encode(c));
      const { ids, length } = stackIds(enc, enc.map((_, k) => k));
      return tf.tensor2d(ids, [enc.length, length], 'int32');
    }

    /** the hard negative images of every training image, rendered with a progress bar */
    async function renderNegativeImages(): Promise<Uint8Array> {
      const n = config.hardNegativeImages;
      const bar = createProgress('negatives', train.count * n, { quiet: opts.quiet });
      const pixels = await renderHardNegativeImages(train.scenes as SceneGraph[], n, train.size, (i) => itemRng(seed, NEGATIVE_IMAGES_SALT, i), {
        onProgress: (done) => bar.update(done),
      });
      bar.stop();
      return pixels;
    }

    /** [B*n, s, s, 3] in [0,1]: the batch images' negatives, translated like the positives when --shift is on */
    function negativeImageBatch(all: Uint8Array, images: Int32Array, at: number): tf.Tensor4D {
      const n = config.hardNegativeImages;
      const s = train.size;
      const rows = Int32Array.from({ length: images.length * n }, (_, r) => images[Math.floor(r / n)] * n + (r % n));
      const pixels = gatherPixels({ size: s, images: all }, rows);
      translateBatch(pixels, images.length * n, s, config.shift, itemRng(seed, NEGATIVE_SHIFT_SALT, at));
      return tf.tensor4d(pixels, [images.length * n, s, s, 3]);
    }

    function secondsPerEpoch(): number {
      return stepsTimed ? (stepMsTotal / stepsTimed / 1000) * perEpoch : NaN;
    }
  } catch (e) {
    progress?.stop();
    optimizer?.dispose();
    model.dispose();
    throw e;
  }
}

/** stream of the --shift offsets: its own salt, so turning shift on leaves batches, captions and attacks unchanged */
const SHIFT_SALT = 0x5417;
/** stream of the hard negative captions (own salt, for the same reason) */
const NEGATIVES_SALT = 0x4e67;
/** hard negative images: their scene edits and nuisance, and their per-step shifts */
const NEGATIVE_IMAGES_SALT = 0x4e69;
const NEGATIVE_SHIFT_SALT = 0x4e5f;

function assignFrom(tensors: Map<string, { shape: number[]; data: Float32Array }>, key: string, v: tf.Variable): void {
  const t = tensors.get(key);
  if (!t) throw new Error(`checkpoint lacks tensor ${key}`);
  if (t.shape.join(',') !== v.shape.join(',')) throw new Error(`checkpoint tensor ${key} has shape [${t.shape}] but the model expects [${v.shape}]`);
  tf.tidy(() => v.assign(tf.tensor(t.data, v.shape, 'float32')));
}

function truncateMetrics(path: string, upToStep: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => {
      if (!line.trim()) return false;
      try {
        return (JSON.parse(line) as { step: number }).step <= upToStep;
      } catch {
        return false; // a line torn by the kill
      }
    });
  writeFileSync(path, kept.map((l) => l + '\n').join(''));
}
