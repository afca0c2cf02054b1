import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ManyfoldConfig, TrainConfig } from '../src/config.js';
import { initBackend } from '../src/engine/backend.js';
import { readDatasetFile } from '../src/data/readers.js';
import { loadSplit } from '../src/data/split.js';
import { evaluateClean, formatCleanSummary, type CleanEvalSummary } from '../src/eval/evaluate.js';
import { loadArtifact, readManifest, saveArtifact, type ArtifactManifest } from '../src/model/artifact.js';
import { Encoder } from '../src/model/encoder.js';
import { checkMemoryFits, estimateTrainingMemory, formatMemoryEstimate, type MemoryEstimate } from '../src/model/memory.js';
import { modelConfigFor } from '../src/model/presets.js';
import type { DualEncoder, ModelConfig } from '../src/model/types.js';
import { buildAugmentPool, type AugmentPool } from '../src/augment/pool.js';
import { ProviderCache } from '../src/augment/providers.js';
import { CHECKPOINT_FILE, METRICS_FILE, trainModel, type StepInfo } from './trainer.js';

export interface RunTrainingOptions {
  config: ManyfoldConfig;
  out: string;
  resume: boolean;
  /** evaluate the final model on the test split (when the data set has one) */
  evaluate: boolean;
  quiet?: boolean;
  stopAfterStep?: number;
  /** see TrainOptions.shouldStop: a graceful stop after the current step, checkpoint written */
  shouldStop?: () => boolean;
  /** allow an adversarial method without --init */
  fromScratch?: boolean;
  /** start over: delete a checkpoint (and its metrics) left in `out` by an earlier run */
  overwrite?: boolean;
  /** largest weight shard of the saved artifact (saveArtifact's shardBytes; default 32 MiB) */
  shardBytes?: number;
  onStep?: (info: StepInfo) => void;
}

export interface RunTrainingResult {
  modelDir: string;
  manifest?: ArtifactManifest;
  finished: boolean;
  secondsPerEpoch: number;
  test?: CleanEvalSummary;
  augment?: AugmentSummary;
}

export interface AugmentSummary {
  names: string[];
  captions: Record<string, number>;
  views: Record<string, number>;
  alignment?: AugmentPool['alignment'];
  ms: number;
}

/** Human-readable augmentation counts (what was generated and what the alignment filter kept). */
export function formatAugmentSummary(a: AugmentSummary): string {
  const lines = [`augment: ${a.names.join(', ')} (pool built in ${(a.ms / 1000).toFixed(1)} s)`];
  const al = a.alignment;
  if (al) {
    lines.push(`  alignment filter: keep cos >= ${al.threshold.toFixed(3)} (the ${al.quantile} quantile of ground-truth pairs; their mean ${al.gtMean.toFixed(3)})`);
    for (const [k, c] of Object.entries(al.captions)) lines.push(`  captions ${k}: kept ${c.kept}/${c.generated}`);
    for (const [k, c] of Object.entries(al.views)) lines.push(`  images ${k}: kept ${c.kept}/${c.generated}`);
  } else {
    for (const [k, n] of Object.entries(a.captions)) lines.push(`  captions ${k}: ${n}`);
    for (const [k, n] of Object.entries(a.views)) lines.push(`  images ${k}: ${n}`);
    lines.push('  alignment filter: off');
  }
  return lines.join('\n');
}

// lives in src/data (src/ needs it without training/); re-exported for the callers that import it from here
export { loadSplit };

/**
 * Caption length, in tokens, the memory estimate assumes: a high percentile of the split's captions, from word
 * counts (read from the data file without decoding any image; BPE splits some words, hence 1.3 tokens a word, plus
 * start and end tokens), capped at the model's context. A batch is padded to its longest caption (per length
 * bucket), so this is near the worst batch, not the average.
 */
export function captionTokenEstimate(captions: readonly string[], maxLen: number): number {
  if (captions.length === 0) return maxLen;
  const words = captions.map((c) => c.split(/\s+/).filter(Boolean).length).sort((a, b) => a - b);
  const p99 = words[Math.min(words.length - 1, Math.floor(0.99 * words.length))];
  return Math.min(maxLen, Math.ceil(1.3 * p99) + 2);
}

/** The memory a run needs (src/model/memory.ts) for its model config, settings and caption length. */
export function estimateRunMemory(model: ModelConfig, tc: TrainConfig, textLen: number, backend?: string): MemoryEstimate {
  const captionsPerImage = tc.captionsPerImage + (tc.augment.length > 0 ? tc.augmentTexts : 0) + tc.hardNegatives;
  return estimateTrainingMemory({
    model,
    method: tc.method,
    batch: tc.batch,
    texts: tc.batch * captionsPerImage,
    textLen,
    extraImages: tc.batch * tc.hardNegativeImages,
    freezeBlocks: tc.freezeBlocks,
    gradAccum: tc.gradAccum,
    // FARE keeps its frozen reference next to the model it trains; other fine-tunes train the --init model in place
    extraModels: tc.method === 'fare' ? 1 : 0,
    backend,
  });
}

/** `manyfold train`: load data, train (resumable), save the artifact, evaluate on test. */
export async function runTraining(opts: RunTrainingOptions): Promise<RunTrainingResult> {
  const { config } = opts;
  const tc = config.train;
  if (opts.overwrite && opts.resume) throw new Error('--overwrite and --resume exclude each other: --overwrite deletes the checkpoint --resume continues');
  const backend = await initBackend(config.backend, { threads: config.threads });
  if (!opts.quiet) process.stderr.write(`backend: ${backend.name} (${backend.reason})\n`);
  // a fine-tune keeps its --init model's architecture and input; a run from scratch takes the preset's with
  // --image-size applied (the vocabulary is not built yet: --max-vocab bounds it)
  const initConfig = tc.init ? (await readManifest(tc.init)).config : undefined;
  const modelConfig = initConfig ?? modelConfigFor(tc.preset, tc.maxVocab, tc);
  const imageSize = modelConfig.image.size;

  // the memory check comes before any image is decoded or weight loaded: the captions' lengths only need the file
  if (!config.data.file) throw new Error('no data file: pass --data FILE (Karpathy JSON or JSONL manifest)');
  const rows = await readDatasetFile(config.data.file, { split: 'train', imagesDir: config.data.imagesDir, onBadRow: config.data.onBadRow });
  const textLen = captionTokenEstimate(rows.records.flatMap((r) => r.captions), modelConfig.text.maxLen);
  const estimate = estimateRunMemory(modelConfig, tc, textLen, backend.name);
  if (!opts.quiet) {
    process.stderr.write(`${formatMemoryEstimate(estimate, backend.name)}\n  (micro-batch of ${tc.batch} images at ${imageSize} px, captions of up to ~${textLen} tokens)\n`);
  }
  checkMemoryFits(estimate, backend.name, { batch: tc.batch, freezeBlocks: tc.freezeBlocks, gradAccum: tc.gradAccum, depth: Math.max(modelConfig.image.depth, modelConfig.text.depth) });

  if (opts.overwrite) {
    for (const f of [CHECKPOINT_FILE, METRICS_FILE]) rmSync(join(opts.out, f), { force: true });
  } else if (!opts.resume && existsSync(join(opts.out, CHECKPOINT_FILE))) {
    // the trainer refuses too; saying it here spares the data loading
    throw new Error(`${opts.out} already holds a training checkpoint: pass --resume to continue it, --overwrite to start over, or choose another --out`);
  }

  const train = await loadSplit(config, 'train', initConfig ?? imageSize, opts.quiet);
  if (train.count === 0) throw new Error(`${config.data.file} has no rows in split "train"`);

  const t0 = Date.now();
  const owned: DualEncoder[] = [];
  let result: Awaited<ReturnType<typeof trainModel>>;
  let augment: AugmentSummary | undefined;
  try {
    const init = tc.init ? await loadArtifact(tc.init) : undefined;
    if (tc.method !== 'clean' && !init && !opts.fromScratch) {
      throw new Error(`--method ${tc.method} fine-tunes a clean model: pass --init MODEL (adversarial training from scratch collapses on small data, see docs/defenses.md), or --from-scratch to insist`);
    }
    const refDir = tc.reference ?? (tc.method === 'fare' ? tc.init : undefined);
    // FARE's reference is the --init model unless another is named: share it rather than load the weights twice
    const reference = tc.method === 'fare' && refDir ? (refDir === tc.init && init ? init.model : (await loadArtifact(refDir)).model) : undefined;
    // the trainer trains the --init model in place (one copy of the weights) unless it must stay intact as the
    // reference; then the trainer copies it and this function owns it
    const adopt = Boolean(init) && reference !== init?.model;
    if (init && !adopt) owned.push(init.model);
    if (reference && reference !== init?.model) owned.push(reference);
    let pool: AugmentPool | undefined;
    if (tc.augment.length > 0) {
      const alignDir = tc.alignModel ?? tc.reference ?? tc.init;
      let scorer: Encoder | undefined;
      let scorerModel: DualEncoder | undefined;
      if (tc.alignQuantile > 0 && alignDir) {
        const a = alignDir === tc.init && init ? init : await loadArtifact(alignDir);
        // a scorer of its own is needed only while the pool is built
        if (a !== init) scorerModel = a.model;
        scorer = new Encoder(a.model, a.tokenizer, a.manifest);
      } else if (tc.alignQuantile > 0 && !opts.quiet) {
        process.stderr.write('warning: no model to score the alignment filter (--init, --reference or --align-model): augmented pairs are not filtered\n');
      }
      try {
        pool = await buildAugmentPool(train, tc.augment, {
          seed: config.seed,
          perSource: tc.augmentPerSource,
          cache: tc.augmentCache ? ProviderCache.read(tc.augmentCache) : undefined,
          scorer,
          quantile: tc.alignQuantile,
        });
      } finally {
        if (scorerModel && scorerModel !== reference) scorerModel.dispose();
      }
      augment = { names: pool.names, captions: pool.stats.captions, views: pool.stats.views, alignment: pool.alignment, ms: pool.stats.ms };
      if (!opts.quiet) process.stderr.write(`${formatAugmentSummary(augment)}\n`);
      mkdirSync(opts.out, { recursive: true });
      writeFileSync(join(opts.out, 'augment.json'), JSON.stringify(augment, null, 2));
    }
    result = await trainModel({
      out: opts.out,
      train,
      config: tc,
      seed: config.seed,
      resume: opts.resume,
      quiet: opts.quiet,
      stopAfterStep: opts.stopAfterStep,
      shouldStop: opts.shouldStop,
      init: init ? { model: init.model, tokenizer: init.tokenizer, id: init.manifest.id, adopt } : undefined,
      reference,
      pool,
      onStep: opts.onStep,
    });
  } finally {
    for (const m of owned) m.dispose();
  }
  const modelDir = join(opts.out, 'model');
  if (!result.finished) {
    result.model.dispose();
    return { modelDir, finished: false, secondsPerEpoch: result.secondsPerEpoch };
  }

  let test: CleanEvalSummary | undefined;
  const testSplit = opts.evaluate ? await loadSplit(config, 'test', result.model.config, opts.quiet).catch(() => undefined) : undefined;
  const encoder = new Encoder(result.model, result.tokenizer);
  if (testSplit && testSplit.count > 0) {
    test = (await evaluateClean(encoder, testSplit)).summary;
    if (!opts.quiet) process.stderr.write(`${formatCleanSummary(test)}\n`);
  }
  const manifest = await saveArtifact(modelDir, {
    model: result.model,
    tokenizer: result.tokenizer,
    overwrite: true,
    ...(opts.shardBytes !== undefined ? { shardBytes: opts.shardBytes } : {}),
    training: {
      data: resolve(config.data.file!),
      dataFingerprint: result.state.dataFingerprint,
      method: config.train.method,
      init: result.state.initId ?? null,
      augment: augment ? augment.names : [],
      seed: config.seed,
      epochs: config.train.epochs,
      steps: result.state.totalSteps,
      config: config.train,
      backend: backend.name,
      secondsPerEpoch: result.secondsPerEpoch,
      trainSeconds: Math.round((Date.now() - t0) / 1000),
      finalLoss: result.finalLoss,
    },
    metrics: test ? { test: { tr: test.tr, ir: test.ir, semantic: test.semantic, protocol: test.protocol, nImages: test.nImages, nTexts: test.nTexts } } : {},
  });
  // the artifact id is known only once it is saved (it hashes the weights): label the test summary with it
  if (test) test.model = manifest.id;
  writeFileSync(join(opts.out, 'train.json'), JSON.stringify({ model: manifest.id, method: config.train.method, backend: `${backend.name} (${backend.reason})`, secondsPerEpoch: result.secondsPerEpoch, test, augment }, null, 2));
  result.model.dispose();
  return { modelDir, manifest, finished: true, secondsPerEpoch: result.secondsPerEpoch, test, augment };
}
