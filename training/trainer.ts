import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tf } from '../src/engine/tf.js';
import type { TrainConfig } from '../src/config.js';
import type { DatasetSplit } from '../src/data/types.js';
import { createDualEncoder } from '../src/model/dual-encoder.js';
import { modelConfigFromPreset } from '../src/model/presets.js';
import { buildTokenizer, tokenizerFromJSON } from '../src/model/tokenizer.js';
import type { DualEncoder, ModelConfig, Tokenizer } from '../src/model/types.js';
import { createProgress } from '../src/util/progress.js';
import { Rng } from '../src/util/rng.js';
import { epochBatches, gatherPixels, sampleCaptions, stackIds, stepsPerEpoch } from './batches.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { multiPositiveInfoNce } from './losses/clip.js';
import { AdamW, clipByGlobalNorm } from './optimizer.js';
import { warmupCosine } from './schedule.js';

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
  onStep?: (info: StepInfo) => void;
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
 * Clean contrastive training with step-exact resume: the batch order depends on (seed, epoch), caption sampling on
 * (seed, step), and the checkpoint holds every weight and optimizer moment, so a run killed at any point and resumed
 * replays the same steps and ends with the same weights as an uninterrupted run.
 */
export async function trainModel(opts: TrainOptions): Promise<TrainResult> {
  const { out, train, config, seed } = opts;
  mkdirSync(out, { recursive: true });
  const ckptPath = join(out, CHECKPOINT_FILE);
  const metricsPath = join(out, METRICS_FILE);
  const fingerprint = fingerprintSplit(train);
  const perEpoch = stepsPerEpoch(train.count, config.batch);
  const totalSteps = perEpoch * config.epochs;
  if (train.count < 2) throw new Error(`training needs at least 2 images, the train split has ${train.count}`);

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
      ...describeMismatch(s.train, config),
    ];
    if (problems.length) throw new Error(`cannot resume ${ckptPath}:\n  ${problems.join('\n  ')}`);
    tokenizer = tokenizerFromJSON(s.tokenizer);
    model = createDualEncoder(s.modelConfig, seed);
    startStep = s.globalStep;
    elapsedBefore = s.elapsedMs;
  } else {
    const maxLen = modelConfigFromPreset(config.preset, 2).text.maxLen;
    tokenizer = buildTokenizer(train.captions, { maxLen, maxVocab: config.maxVocab, minFreq: config.minWordFreq });
    model = createDualEncoder(modelConfigFromPreset(config.preset, tokenizer.vocabSize), seed);
    writeFileSync(metricsPath, '');
  }

  const optimizer = new AdamW(model.variables, { weightDecay: config.weightDecay });
  if (restored) {
    const s = restored.state;
    for (const [name, v] of model.variables) assignFrom(restored.tensors, `w/${name}`, v);
    for (const [name, v] of optimizer.m) assignFrom(restored.tensors, `m/${name}`, v);
    for (const [name, v] of optimizer.v) assignFrom(restored.tensors, `v/${name}`, v);
    optimizer.step = s.optimizerStep;
    truncateMetrics(metricsPath, startStep);
  }

  const tokenized = train.captions.map((c) => tokenizer.encode(c));
  const varList = [...model.variables.values()];
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
    optimizerStep: optimizer.step,
    elapsedMs: elapsedBefore + (Date.now() - startedAt),
  });
  const saveCheckpoint = () => {
    const tensors = new Map<string, tf.Tensor>();
    for (const [name, v] of model.variables) tensors.set(`w/${name}`, v);
    for (const [name, v] of optimizer.m) tensors.set(`m/${name}`, v);
    for (const [name, v] of optimizer.v) tensors.set(`v/${name}`, v);
    writeCheckpoint(ckptPath, state(), tensors);
  };

  const progress = createProgress('train', totalSteps, { quiet: opts.quiet });
  const startedAt = Date.now();
  let step = startStep;
  let lastLoss = NaN;
  let stepMsTotal = 0;
  let stepsTimed = 0;
  try {
    for (let epoch = Math.floor(startStep / perEpoch); epoch < config.epochs; epoch++) {
      const batches = epochBatches(train.count, config.batch, seed, epoch);
      for (let inEpoch = step - epoch * perEpoch; inEpoch < perEpoch; inEpoch++) {
        const t0 = Date.now();
        const images = batches[inEpoch];
        const rng = new Rng(seed * 1_000_003 + step);
        const { captions, owner } = sampleCaptions(train, images, config.captionsPerImage, rng);
        const { ids, length } = stackIds(tokenized, captions);
        const lr = warmupCosine(step, totalSteps, config.lr, config.warmupFraction, config.minLrRatio);
        const s = train.size;
        const x = tf.tensor4d(gatherPixels(train, images), [images.length, s, s, 3]);
        const idT = tf.tensor2d(ids, [captions.length, length], 'int32');
        const { value, grads } = tf.variableGrads(
          () => multiPositiveInfoNce(model.imageTower(x), model.textTower(idT), owner, model.logitScale()),
          varList,
        );
        x.dispose();
        idT.dispose();
        const named: Record<string, tf.Tensor> = {};
        for (const [vn, g] of Object.entries(grads)) named[nameOf.get(vn) ?? vn] = g;
        const gradNorm = clipByGlobalNorm(named, config.gradClip);
        optimizer.apply(named, lr);
        for (const g of Object.values(named)) g.dispose();
        lastLoss = value.dataSync()[0];
        value.dispose();
        if (!Number.isFinite(lastLoss)) throw new Error(`loss became ${lastLoss} at step ${step} (lr ${lr}); lower --lr`);
        const scale = tf.tidy(() => model.logitScale().dataSync()[0]);
        step += 1;
        const ms = Date.now() - t0;
        stepMsTotal += ms;
        stepsTimed += 1;
        const info: StepInfo = { step, epoch, loss: lastLoss, lr, scale, gradNorm, ms, numTensors: tf.memory().numTensors };
        appendFileSync(metricsPath, JSON.stringify(info) + '\n');
        opts.onStep?.(info);
        progress.update(step, { epoch: `${epoch + 1}/${config.epochs}`, loss: lastLoss });
        if (step % config.checkpointEvery === 0 || inEpoch === perEpoch - 1) saveCheckpoint();
        if (opts.stopAfterStep !== undefined && step >= opts.stopAfterStep) {
          progress.stop();
          optimizer.dispose();
          return { model, tokenizer, state: state(), finished: false, secondsPerEpoch: secondsPerEpoch(), finalLoss: lastLoss };
        }
      }
    }
  } catch (e) {
    progress.stop();
    optimizer.dispose();
    model.dispose();
    throw e;
  }
  progress.stop();
  optimizer.dispose();
  return { model, tokenizer, state: state(), finished: true, secondsPerEpoch: secondsPerEpoch(), finalLoss: lastLoss };

  function secondsPerEpoch(): number {
    return stepsTimed ? (stepMsTotal / stepsTimed / 1000) * perEpoch : NaN;
  }
}

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
